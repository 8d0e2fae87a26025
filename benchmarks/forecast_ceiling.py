"""How far can a motion-only forecaster get on data like its training data? (issue 10's 0.85x target)

The shipped `weights/traj_lstm.pt` was trained on every source, holding out 15 % of each source's trajectories
(by id, `is_holdout`, the split training uses). Scored here on exactly those held-out trajectories: same cameras,
same scenes, same people's habits, only other individuals. This is an upper bound on what the leave-one-source-out
benchmark can show: a ratio above 0.85 here means the inputs (6 observed positions and box sizes) do not carry
a 15 % gain on that source even in distribution.

Prints one markdown row per source: windows, ADE at 2 s (body heights) of lstm, tuned cv and Kalman, and
lstm / better baseline. Run: `.venv/bin/python benchmarks/forecast_ceiling.py` (under a minute; needs
`make own-tracks` for the video rows).
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.core.config import PredictorConfig  # noqa: E402
from pipeline.forecast.features import FeatureSpec, window_scale  # noqa: E402
from pipeline.forecast.predictors import LSTMPredictor  # noqa: E402
from pipeline.learning.datasets import make_windows  # noqa: E402
from pipeline.learning.evaluation import predict_batched, tuned_baselines  # noqa: E402
from pipeline.learning.loso_bench import SOURCES, load_sources  # noqa: E402
from pipeline.learning.training import is_holdout  # noqa: E402

SPEC = FeatureSpec(step_s=0.4, obs_len=6, pred_len=5)  # 2 s ahead
VAL_FRACTION = 0.15  # configs/train.yaml's val_fraction: the trajectories the shipped model never trained on
CAP = 8000  # windows scored per source (seeded subset)


def main() -> None:
    data = load_sources(SimpleNamespace(data_root=ROOT.parent / "shared" / "data", project_root=ROOT), lambda s: None)
    lstm = LSTMPredictor(str(ROOT / "weights" / "traj_lstm.pt"))
    lstm.horizon = SPEC.pred_len
    print("| source (held-out trajectories) | windows | lstm | cv | kalman | lstm / better baseline @2 s |")
    print("|---|---|---|---|---|---|")
    for src in SOURCES:
        win, fut, _ = make_windows([t for t in data[src.name] if is_holdout(t.key, VAL_FRACTION)], SPEC)
        if not src.held_out or len(fut) == 0:
            continue
        if len(fut) > CAP:
            keep = np.sort(np.random.default_rng(0).choice(len(fut), CAP, replace=False))
            win, fut = win.take(keep), fut[keep]
        scale = window_scale(win, SPEC)
        methods = {"lstm": lstm, **tuned_baselines(SPEC, PredictorConfig(), bool(win.has_box.any()))}
        ade = {m: float((np.linalg.norm(predict_batched(p, win)[0][:, :, :2] - fut[:, :, :2], axis=2)
                         / scale[:, None]).mean()) for m, p in methods.items()}
        ratio = ade["lstm"] / min(ade["cv"], ade["kalman"])
        print(f"| {src.name} | {len(fut)} | {ade['lstm']:.3f} | {ade['cv']:.3f} | {ade['kalman']:.3f} | {ratio:.3f} |",
              flush=True)


if __name__ == "__main__":
    main()
