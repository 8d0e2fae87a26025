"""The README's two 'Use from Python' loops run as written, from a folder outside the checkout.

Only the model and video names are swapped for the shipped detector and sample clip (the README's
`yolo11n.pt` would be a download), and a line is appended that prints what the last call returned.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT, SAMPLE, SHIPPED_DETECTOR

pytestmark = pytest.mark.slow


def _examples() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Use from Python", 1)[1].split("\n## ", 1)[0]
    return [b for b in re.findall(r"```python\n(.*?)```", section, re.S) if "while True:" in b]


def test_the_readme_has_an_ultralytics_and_a_supervision_loop():
    loops = _examples()
    assert len(loops) == 2
    assert "model.track(frame, persist=True" in loops[0] and "sv.ByteTrack" in loops[1]


@pytest.mark.parametrize("which", [0, 1], ids=["ultralytics", "supervision"])
def test_a_readme_loop_runs_from_another_folder(which, tmp_path):
    code = _examples()[which]
    assert '"yolo11n.pt"' in code and '"street.mp4"' in code
    code = code.replace('"yolo11n.pt"', repr(str(SHIPPED_DETECTOR))).replace('"street.mp4"', repr(str(SAMPLE)))
    code = code.replace("YOLO(" + repr(str(SHIPPED_DETECTOR)) + ")", "YOLO(" + repr(str(SHIPPED_DETECTOR)) + ", task='detect')")
    code += "print('frames', k, 'tracks', len(fc.track_id), 'shape', fc.xy.shape, 'served', fc.served)\n"
    script = tmp_path / "loop.py"
    script.write_text(code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"YOLO_OFFLINE": "1"}
    p = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    m = re.search(r"frames (\d+) tracks (\d+) shape \((\d+), (\d+), 2\) served (\w+)", p.stdout)
    assert m, p.stdout
    frames, tracks, n, horizon = map(int, m.groups()[:4])
    assert frames == 110 and tracks == n >= 1 and horizon >= 1  # people walk through the whole sample clip
    assert m[5] in ("lstm", "cv", "kalman")
