"""Leave-one-source-out forecast benchmark: for every source, tune cv and Kalman and train the LSTM on all the
other sources, then score the three on the source that was left out, at 1, 2 and 3 s, in body heights.

This is the honest test of a forecaster for cameras it has never seen: nothing of the held-out source (not its
trajectories, not its speed, not its frame rate) reaches the tuning or the training. Every source is reported.
ETH/UCY scenes are scored on their standard test files with the 8 -> 12 protocol (metres) as well.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.config import PredictorConfig
from pipeline.forecast.features import FeatureSpec, window_scale
from pipeline.forecast.model import save_checkpoint
from pipeline.forecast.predictors import LSTMPredictor, Predictor
from pipeline.learning.datasets import Trajectory, concat_windows
from pipeline.learning.loaders import load
from pipeline.learning.evaluation import ETHUCY, evaluate, metrics, predict_batched, tuned_baselines
from pipeline.learning.training import TrainConfig, batches, fit, source_windows, split_windows
from pipeline.learning.tuning import TunedBaselines, tune_baselines


@dataclass(frozen=True)
class Source:
    """One source: how to load it, which keys belong to it, and (ETH/UCY) its standard test files."""

    name: str
    fmt: str
    paths: tuple[str, ...]  # relative to the data root, or to the project for runs/...
    select: str = ""  # keep only trajectories whose key starts with this (sub-sources of one file or archive)
    test: str = ""  # ETH/UCY: the scene's standard test folder, scored with the 8 -> 12 protocol
    held_out: bool = True  # False: a training-only source (never scored on its own)


def _eth(name: str, files: tuple[str, ...], test: str) -> Source:
    return Source(f"ethucy/{name}", "ethucy", tuple(f"ethucy/all_data/{f}" for f in files), test=f"ethucy/{test}/test")


VIDEOS = ("vtest_pets2009_480x360", "street_traffic_640x360", "oxford_street_pedestrians_1080p",
          "intel_one-by-one-person-detection", "yellow_crosswalk_640x360")
SOURCES: tuple[Source, ...] = (
    _eth("eth", ("biwi_eth.txt",), "eth"),
    _eth("univ", ("students001.txt", "students003.txt"), "univ"),
    _eth("zara1", ("crowds_zara01.txt",), "zara1"),
    _eth("zara2", ("crowds_zara02.txt",), "zara2"),
    Source("ethucy/extra", "ethucy", ("ethucy/all_data/crowds_zara03.txt", "ethucy/all_data/uni_examples.txt"),
           held_out=False),
    *(Source(f"sdd/{s}", "sdd", ("sdd",), select=f"sdd/{s}/") for s in ("deathCircle", "gates", "hyang", "little", "quad")),
    Source("gc", "gc", ("gc",)),
    Source("dut", "dut", ("dut",)),
    Source("wildtrack", "trajnetpp", ("trajnetpp/wildtrack.ndjson",)),
    Source("lcas", "trajnetpp", ("trajnetpp/lcas.ndjson",)),
    Source("edinburgh", "edinburgh", ("edinburgh/tracks.01Jul.txt",)),
    Source("mot15_tud", "mot", ("mot15_tud_gt",)),
    Source("jaad", "jaad", ("jaad/jaad_annotations.tar.xz",)),
    *(Source(f"video/{v}", "tracks", (f"runs/own/{v}/tracks.csv",)) for v in VIDEOS),
)


@dataclass
class BenchConfig:
    """What the benchmark trains and scores; the defaults fit a 2-core CPU (about 2 minutes a source)."""

    data_root: Path
    project_root: Path
    train: TrainConfig
    eval_pred_len: int = 8  # steps scored on held-out sources (3.2 s at 0.4 s: covers 1, 2 and 3 s)
    eval_cap: int = 5000  # windows scored per held-out source (seeded random subset)
    only: tuple[str, ...] = ()  # score only these sources (all are still used for training)
    force: bool = False  # redo sources already in the results file


def load_sources(cfg: BenchConfig, log: Callable[[str], None]) -> dict[str, list[Trajectory]]:
    """Every source's trajectories, each file or archive read once."""
    cache: dict[tuple[str, str], list[Trajectory]] = {}
    out = {}
    for src in SOURCES:
        trajs = []
        for p in src.paths:
            root = cfg.project_root if p.startswith("runs/") else cfg.data_root
            if (src.fmt, p) not in cache:
                cache[(src.fmt, p)] = load(src.fmt, root / p, "all")
            trajs += [t for t in cache[(src.fmt, p)] if t.key.startswith(src.select)]
        out[src.name] = trajs
        log(f"{src.name}: {len(trajs)} trajectories")
    return out


def _baselines(tuned: TunedBaselines, spec: FeatureSpec, has_box: bool) -> dict[str, Predictor]:
    """cv and Kalman with this fold's tuned settings, built as `eval` builds them."""
    return tuned_baselines(spec, PredictorConfig(**tuned.predictor_settings()), has_box)


def run_fold(held: Source, data: dict[str, list[Trajectory]], cfg: BenchConfig, tmp: Path,
             log: Callable[[str], None]) -> dict[str, Any]:
    """Tune and train without `held`, then score all three on it."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(cfg.train.seed)
    others = [data[s.name] for s in SOURCES if s.name != held.name and data[s.name]]
    tr_parts, va_parts = split_windows(others, cfg.train, rng)
    tw, tf = concat_windows(tr_parts, cfg.train.spec)
    tuned = tune_baselines(tw, tf, cfg.train.spec)
    tcfg = dataclasses.replace(cfg.train, cv_steps=tuned.cv_steps, cv_gain=tuned.cv_gain)
    vw, vf = concat_windows(va_parts, tcfg.spec)
    model, meta = fit(*batches(tw, tf, vw, vf, tcfg, rng), tcfg, quiet=True)
    ckpt = tmp / f"{held.name.replace('/', '_')}.pt"
    save_checkpoint(ckpt, model, tcfg.spec, meta)
    lstm = LSTMPredictor(str(ckpt))
    result = {"tuned": tuned.predictor_settings(), "train_windows": len(tf), "val_ade": meta["val_ade_units"],
              "val_prior_ade": meta["val_prior_ade_units"], "best_epoch": meta["best_epoch"]}
    result.update(score_source(held, data[held.name], lstm, tuned, cfg, rng))
    result["minutes"] = (time.perf_counter() - t0) / 60
    return result


def score_source(held: Source, trajs: list[Trajectory], lstm: LSTMPredictor, tuned: TunedBaselines,
                 cfg: BenchConfig, rng: np.random.Generator) -> dict[str, Any]:
    """Body-height scores on the held-out source's windows (and the ETH/UCY protocol in metres).

    `auto` is what `--predictor auto` does on a camera: it picks the member with the lowest ADE at 2 s on a
    warm-up share of the source's windows (25 %, random) and serves it; all methods are then scored on the
    other 75 %, reported under "served".
    """
    short, long = _scored(trajs, lstm, tuned, cfg, 5, rng), _scored(trajs, lstm, tuned, cfg, cfg.eval_pred_len, rng)
    out: dict[str, Any] = {"windows": short["windows"], "windows_3s": long["windows"]}
    for part in ("body_heights", "served"):  # 1 and 2 s on every window with 2 s of future, 3 s on those with 3.2 s
        out[part] = {m: {**short[part][m], **{k: v for k, v in long[part][m].items() if k.endswith("3s")}}
                     for m in short[part] if m != "windows"}
    out["served"]["windows"] = short["served"]["windows"]
    if held.test:
        test = load("ethucy", cfg.data_root / held.test)
        proto_methods = {"lstm": lstm, **_baselines(tuned, ETHUCY.spec, False)}
        lstm.horizon = ETHUCY.spec.pred_len
        res, n = evaluate(test, ETHUCY, proto_methods)
        out["ethucy_protocol_m"] = {"windows": n, **res}
    return out


def _scored(trajs: list[Trajectory], lstm: LSTMPredictor, tuned: TunedBaselines, cfg: BenchConfig, pred_len: int,
            rng: np.random.Generator) -> dict[str, Any]:
    """All methods on the source's windows with `pred_len` future steps; auto picks on a 25 % warm-up share."""
    spec = dataclasses.replace(cfg.train.spec, pred_len=pred_len)
    win, fut = source_windows(trajs, spec, 1, cfg.eval_cap, rng)
    lstm.horizon = spec.pred_len
    methods = {"lstm": lstm, **_baselines(tuned, spec, bool(win.has_box.any()))}
    preds = {m: predict_batched(p, win) for m, p in methods.items()}  # once; the subsets below reuse them
    scale = window_scale(win, spec)

    def scores(keep: np.ndarray) -> dict[str, dict[str, float]]:
        return {m: metrics(xy[keep], fut[keep], spec.step_s, None if sd is None else sd[keep], scale[keep])
                for m, (xy, sd) in preds.items()}

    out: dict[str, Any] = {"windows": len(fut), "body_heights": scores(np.ones(len(fut), bool))}
    warm = np.random.default_rng(0).random(len(fut)) < 0.25
    rest, first = scores(~warm), scores(warm)
    key = "ade_2s" if "ade_2s" in rest["cv"] else "ade"
    pick = min(methods, key=lambda m: first[m][key])
    out["served"] = {**rest, "auto": {**rest[pick], "picked": pick}, "windows": int((~warm).sum())}
    return out


def ratio_at(result: dict[str, Any], method: str = "lstm", key: str = "ade_2s") -> float:
    """A method's error over the better tuned baseline's on the served windows (below 1: it wins)."""
    sv = result["served"]
    return sv[method][key] / min(sv["cv"][key], sv["kalman"][key])


def format_table(results: dict[str, dict[str, Any]]) -> str:
    """A markdown table: every source, ADE at 1/2/3 s for the three methods, the ratios at 2 s, calibration."""
    head = ("| held-out source | windows | lstm ADE 1/2/3 s | cv ADE 1/2/3 s | kalman ADE 1/2/3 s | "
            "lstm / best @2 s | auto (picked) / best @2 s | lstm inside 1σ / 2σ, NLL (trained spread) |\n"
            "|---|---|---|---|---|---|---|---|")
    rows = []
    for name, r in results.items():
        sv = r["served"]
        cells = [" / ".join(f"{sv[m][f'ade_{h}s']:.3f}" for h in (1, 2, 3)) for m in ("lstm", "cv", "kalman")]
        cal = f"{sv['lstm']['within_1sigma']:.2f} / {sv['lstm']['within_2sigma']:.2f}, {sv['lstm'].get('nll', math.nan):.2f}"
        auto = f"{ratio_at(r, 'auto'):.3f} ({sv['auto']['picked']})"
        rows.append(f"| {name} | {sv['windows']} | {' | '.join(cells)} | {ratio_at(r):.3f} | {auto} | {cal} |")
    return "\n".join([head, *rows])


def run(cfg: BenchConfig, out_json: Path, log: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Every fold in turn; the JSON is rewritten after each, so an interrupted run keeps what it finished."""
    import tempfile

    data = load_sources(cfg, log)
    results: dict[str, dict[str, Any]] = json.loads(out_json.read_text()) if out_json.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        for src in SOURCES:
            if not src.held_out or (cfg.only and src.name not in cfg.only) or not data[src.name]:
                continue
            if src.name in results and not cfg.force:
                log(f"{src.name}: already in {out_json} (--force redoes it)")
                continue
            results[src.name] = run_fold(src, data, cfg, Path(tmp), log)
            log(f"{src.name}: lstm/best @2 s {ratio_at(results[src.name]):.3f} "
                f"({results[src.name]['minutes']:.1f} min)")
            out_json.write_text(json.dumps(results, indent=1))
    return results
