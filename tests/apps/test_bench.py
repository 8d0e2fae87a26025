import re

from tests.conftest import DETECTOR, VTEST, run_cli


def test_bench_prints_every_stage_and_the_ratio():
    proc = run_cli("bench", "--source", str(VTEST), "--weights", str(DETECTOR), "--frames", "12", "--repeats", "1")
    assert proc.returncode == 0, proc.stderr
    rows = dict(re.findall(r"^(\([a-d]'?\)[^\n]*?)\s+([\d.]+)\s+[\d.]+\s+\d+$", proc.stdout, re.M))
    names = " ".join(rows)
    for stage in ("(a) ultralytics predict", "(b) ultralytics model.track", "(c) our track pipeline",
                  "(c') same, simple path", "predictor lstm, 1 tracks", "predictor lstm, 100 tracks"):
        assert stage in names, proc.stdout
    ms = {k.split()[0]: float(v) for k, v in rows.items()}
    assert all(v > 0 for v in ms.values())
    ratio = float(re.search(r"speed-up of \(c\) over \(b\): ([\d.]+)x", proc.stdout)[1])
    assert abs(ratio - ms["(b)"] / ms["(c)"]) < 0.02
    t100 = float(re.search(r"predictor lstm, 100 tracks\s+([\d.]+)", proc.stdout)[1])
    t1 = float(re.search(r"predictor lstm, 1 tracks\s+([\d.]+)", proc.stdout)[1])
    assert t100 > t1  # batched cost grows with the batch


def test_bench_rejects_bad_arguments(tmp_path):
    proc = run_cli("bench", "--source", str(tmp_path / "none.mp4"), "--frames", "5")
    assert proc.returncode == 2 and proc.stderr.startswith("error: --frames")
    proc = run_cli("bench", "--source", str(tmp_path / "none.mp4"))
    assert proc.returncode == 2 and "video not found" in proc.stderr
