import json
import re

import pytest

from tests.conftest import DETECTOR, VTEST, run_cli


@pytest.mark.slow
def test_bench_prints_every_stage_the_machine_and_the_ratios(tmp_path):
    out = tmp_path / "bench.json"
    proc = run_cli("bench", "--source", str(VTEST), "--weights", str(DETECTOR), "--frames", "12", "--repeats", "1",
                   "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = dict(re.findall(r"^(\([a-z]'?\)[^\n]*?)\s+([\d.]+)\s+[\d.]+\s+\d+$", proc.stdout, re.M))
    names = " ".join(rows)
    for stage in ("(i) decode only", "(n) bare network inference", "(a) ultralytics predict",
                  "(b) ultralytics model.track", "(c) our track pipeline", "(c') same, simple path",
                  "predictor lstm, 1 tracks", "predictor lstm, 100 tracks"):
        assert stage in names, proc.stdout
    ms = {k.split()[0]: float(v) for k, v in rows.items()}
    assert all(v > 0 for v in ms.values())
    ratio = float(re.search(r"speed-up of \(c\) over \(b\): ([\d.]+)x", proc.stdout)[1])
    assert abs(ratio - ms["(b)"] / ms["(c)"]) < 0.02
    over = float(re.search(r"\(c\) per frame over bare inference \(n\): ([\d.]+)x", proc.stdout)[1])
    assert abs(over - ms["(c)"] / ms["(n)"]) < 0.02
    assert re.search(r"^machine: .+, \d+ cores, .+ GiB; ISA: ", proc.stdout, re.M), proc.stdout
    assert re.search(r"start-up, process start to first frame drawn: [\d.]+ s", proc.stdout)
    t100 = float(re.search(r"predictor lstm, 100 tracks\s+([\d.]+)", proc.stdout)[1])
    t1 = float(re.search(r"predictor lstm, 1 tracks\s+([\d.]+)", proc.stdout)[1])
    assert t100 > t1  # batched cost grows with the batch
    data = json.loads(out.read_text())
    assert [r["name"] for r in data["rows"]] == [k for k in rows]
    assert abs(data["ratios"]["speedup_over_model_track"] - ratio) < 0.01
    assert data["machine"]["cores"] >= 1 and isinstance(data["machine"]["isa"], list) and data["startup_s"] > 0


def test_bench_rejects_bad_arguments(tmp_path):
    proc = run_cli("bench", "--source", str(tmp_path / "none.mp4"), "--frames", "5")
    assert proc.returncode == 2 and proc.stderr.startswith("error: --frames")
    proc = run_cli("bench", "--source", str(tmp_path / "none.mp4"))
    assert proc.returncode == 2 and "video not found" in proc.stderr
    proc = run_cli("bench", "--source", str(VTEST), "--device", "cuda:0", "--frames", "10")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--device cuda:0" in proc.stderr, proc.stderr
