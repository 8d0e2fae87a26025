"""`run.py eval` on real splits, and the shipped checkpoints: present, loadable, self-consistent."""

from __future__ import annotations

import json
import math

import pytest
import torch

from pipeline.forecast.model import load_checkpoint, save_checkpoint
from tests.conftest import DATA, LSTM_CKPT, ROOT, run_cli

WEIGHTS = ROOT / "weights"
PROMISED = ["traj_lstm.pt"]
ETH = DATA / "ethucy"


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
        for a, b in zip(again(x, prior), model(x, prior)):
            torch.testing.assert_close(a, b)


def _table(stdout: str) -> dict[str, list[float]]:
    rows = {}
    for line in stdout.splitlines():
        parts = line.split()
        if parts and parts[0] in ("lstm", "cv", "kalman"):
            rows[parts[0]] = [float(v) for v in parts[1:]]
    return rows


def test_eval_ethucy_scene_prints_all_three_methods_and_json(tmp_path):
    out = tmp_path / "zara1.json"
    r = run_cli("eval", "--data", str(ETH / "zara1" / "test"), "--format", "ethucy", "--json", str(out),
                "--lstm-weights", str(LSTM_CKPT))  # the forecast model's flag in every subcommand
    assert r.returncode == 0, r.stderr
    assert "2356 windows; errors in metres" in r.stdout
    table = _table(r.stdout)
    assert set(table) == {"lstm", "cv", "kalman"}
    res = json.loads(out.read_text())
    assert res["windows"] == 2356 and set(res) == {"lstm", "cv", "kalman", "windows", "unit"}
    for m in ("lstm", "cv", "kalman"):
        assert {"ade", "fde", "ade_1s", "fde_1s", "ade_2s", "fde_2s", "ade_3s", "fde_3s"} <= set(res[m])
        assert table[m][:2] == pytest.approx([res[m]["ade"], res[m]["fde"]], abs=1e-3)
        assert res[m]["ade_1s"] < res[m]["ade_2s"] < res[m]["ade_3s"] < res[m]["fde_3s"]
        assert 0 < res[m]["within_1sigma"] < res[m]["within_2sigma"] <= 1  # every predictor reports a spread
        assert math.isfinite(res[m]["nll"])


@pytest.mark.slow
def test_eval_in_body_heights_divides_metres_by_1_7(tmp_path):
    m, bh = tmp_path / "m.json", tmp_path / "bh.json"
    base = ["eval", "--data", str(ETH / "zara2" / "test"), "--format", "ethucy", "--methods", "cv"]
    assert run_cli(*base, "--json", str(m)).returncode == 0
    assert run_cli(*base, "--body-heights", "--json", str(bh)).returncode == 0
    a, b = json.loads(m.read_text()), json.loads(bh.read_text())
    assert b["unit"] == "body heights" and b["cv"]["ade"] == pytest.approx(a["cv"]["ade"] / 1.7, rel=1e-6)


@pytest.mark.slow
def test_eval_bad_inputs_get_one_line_errors(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    junk = tmp_path / "junk.txt"
    junk.write_text("this is not\na trajectory file\n")
    cases = [
        (["--data", str(empty), "--format", "ethucy"], "empty"),
        (["--data", str(junk), "--format", "ethucy"], "not an ETH/UCY file"),
        (["--data", str(ETH / "zara1" / "test"), "--format", "ethucy", "--obs", "3"], "pass a matching --lstm-weights"),
        (["--data", str(tmp_path / "nope"), "--format", "mot"], "not found"),
    ]
    for args, msg in cases:
        r = run_cli("eval", *args)
        assert r.returncode == 2, (args, r.stderr)
        assert msg in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
