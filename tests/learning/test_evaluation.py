"""`run.py eval` on real splits, and the shipped checkpoints: present, loadable, self-consistent."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pipeline.forecast.model import load_checkpoint, save_checkpoint
from tests.conftest import DATA, ROOT, run_cli

WEIGHTS = ROOT / "weights"
PROMISED = ["traj_lstm_pixels.pt", "traj_lstm_ethucy.pt", "traj_lstm_jaad.pt"] + [
    f"traj_lstm_ethucy_{s}.pt" for s in ("eth", "univ", "zara1", "zara2")
]
ETH = DATA / "ethucy"
JAAD = DATA / "jaad" / "jaad_annotations.tar.xz"


def test_every_promised_checkpoint_is_shipped():
    missing = [n for n in PROMISED if not (WEIGHTS / n).is_file()]
    assert not missing


@pytest.mark.parametrize("name", PROMISED)
def test_shipped_checkpoint_rebuilds_and_beats_its_prior_in_validation(name, tmp_path):
    model, spec, meta = load_checkpoint(WEIGHTS / name)
    lstm = model.lstm
    assert (lstm.input_size, lstm.hidden_size, lstm.num_layers, lstm.batch_first) == (512, 128, 2, True)
    assert meta["train_windows"] > 1000 and meta["epochs_run"] >= 1
    assert meta["val_ade_units"] < meta["val_prior_ade_units"]  # learned something beyond constant velocity
    assert meta["train_minutes"] <= 30
    save_checkpoint(tmp_path / "again.pt", model, spec, meta)
    again, spec2, meta2 = load_checkpoint(tmp_path / "again.pt")
    assert spec2 == spec and meta2["best_epoch"] == meta["best_epoch"]
    x, prior = torch.randn(4, spec.obs_len, 512), torch.randn(4, spec.pred_len, 4)
    with torch.no_grad():
        torch.testing.assert_close(again(x, prior), model(x, prior))


def _table(stdout: str) -> dict[str, list[float]]:
    rows = {}
    for line in stdout.splitlines():
        parts = line.split()
        if parts and parts[0] in ("lstm", "cv", "kalman"):
            rows[parts[0]] = [float(v) for v in parts[1:]]
    return rows


def test_eval_ethucy_scene_prints_all_three_methods_and_json(tmp_path):
    out = tmp_path / "zara1.json"
    r = run_cli("eval", "--data", str(ETH / "zara1" / "test"), "--format", "ethucy",
                "--weights", "weights/traj_lstm_ethucy_zara1.pt", "--json", str(out))
    assert r.returncode == 0, r.stderr
    assert "2356 windows; ade/fde in metres" in r.stdout
    table = _table(r.stdout)
    assert set(table) == {"lstm", "cv", "kalman"}
    res = json.loads(out.read_text())
    assert res["windows"] == 2356 and set(res) >= {"lstm", "cv", "kalman"}
    assert res["cv"]["ade"] == pytest.approx(0.43, abs=0.01)  # the published strict CV figure
    for m in ("lstm", "cv", "kalman"):
        assert table[m] == pytest.approx([res[m]["ade"], res[m]["fde"]], abs=1e-3)
    assert res["lstm"]["ade"] < res["cv"]["ade"] and res["lstm"]["fde"] < res["cv"]["fde"]


def test_eval_jaad_uses_the_shipped_box_model_by_default(tmp_path):
    out = tmp_path / "jaad.json"
    r = run_cli("eval", "--data", str(JAAD), "--format", "jaad", "--json", str(out))
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert 13_400 <= res["windows"] <= 13_800
    for key in ("mse_15", "mse_30", "mse_45", "c_mse", "cf_mse"):
        assert res["lstm"][key] < res["cv"][key]
    assert np.isfinite([res["kalman"][k] for k in ("ade", "fde")]).all()


def test_eval_bad_inputs_get_one_line_errors(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    junk = tmp_path / "junk.txt"
    junk.write_text("this is not\na trajectory file\n")
    cases = [
        (["--data", str(empty), "--format", "ethucy"], "empty"),
        (["--data", str(junk), "--format", "ethucy"], "not an ETH/UCY file"),
        (["--data", str(ETH / "zara1" / "test"), "--format", "ethucy", "--weights", "weights/traj_lstm_jaad.pt"],
         "trained for"),
        (["--data", str(tmp_path / "nope"), "--format", "mot"], "not found"),
    ]
    for args, msg in cases:
        r = run_cli("eval", *args)
        assert r.returncode == 2, (args, r.stderr)
        assert msg in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
