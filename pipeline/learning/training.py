"""Training of TrajectoryLSTM on real trajectories, with the same windows and features as inference."""

from __future__ import annotations

import dataclasses
import math
import sys
import time
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from pipeline.learning.datasets import Trajectory, concat_windows, make_windows
from pipeline.learning.loaders import load
from pipeline.learning.tuning import tune_baselines
from pipeline.core.errors import UserError
from pipeline.forecast.features import (
    FeatureSpec,
    Window,
    canonical,
    encode,
    future_targets,
    velocity_prior,
    window_scale,
)
from pipeline.forecast.model import ModelConfig, TrajectoryLSTM, save_checkpoint


@dataclass
class DataSource:
    """One data set: a format (see loaders.FORMATS), a path, and for JAAD its split."""

    format: str
    path: str
    split: str = "train"


@dataclass
class TrainConfig:
    """Everything `run.py train` needs; see configs/train.yaml for a commented example."""

    train: list[DataSource] = field(default_factory=list)
    val: list[DataSource] = field(default_factory=list)  # empty: hold out val_fraction of train trajectories
    val_fraction: float = 0.15  # share of trajectories (by key) held out when no val sources are given
    step_s: float = 0.4  # model time step, seconds
    obs_len: int = 6  # observed steps
    pred_len: int = 12  # predicted steps
    stride: int = 1  # window stride in steps
    max_windows_per_source: int = 20000  # windows kept per data source (random, seeded), so no source dominates
    cv_steps: int = 1  # the constant-velocity prior the LSTM corrects: velocity over the last cv_steps steps ...
    cv_gain: float = 1.0  # ... times this factor (tune both with `run.py bench forecast`)
    box_features: bool = True  # feed box size and its rate of change to the model (False: zeros)
    tune_prior: bool = False  # tune cv (and Kalman) on the training windows first; the prior uses the tuned cv
    epochs: int = 3
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    dropout: float = 0.1
    bound: float = 3.0  # the residual is at most this many training residual spreads per step
    nll_weight: float = 0.5  # weight of the Gaussian likelihood that trains the spread
    patience: int = 3  # epochs without val improvement before stopping
    time_limit_min: float = 25.0  # stop training after this many minutes
    seed: int = 0
    flip: bool = True  # mirrored copies of the training windows
    speed_aug: float = 0.2  # copies stretched in space by a random factor in [1/(1+a), 1+a] (slower/faster)
    jitter: float = 0.08  # most detection noise added to those copies' observed positions, body heights (1 sigma)
    gap_prob: float = 0.2  # share of those copies with one missed observation (interpolated, gap_s set)
    device: str = "auto"  # torch device for training: auto (cuda when available, else cpu), cpu, cuda
    out: str = "runs/train/traj_lstm.pt"

    def __post_init__(self) -> None:
        self.train = [s if isinstance(s, DataSource) else DataSource(**s) for s in self.train]
        self.val = [s if isinstance(s, DataSource) else DataSource(**s) for s in self.val]
        if not self.train:
            raise UserError("training needs at least one data source (train: [{format: ..., path: ...}])")
        if self.step_s <= 0 or self.obs_len < 2 or self.pred_len < 1:
            raise UserError("train config: step_s > 0, obs_len >= 2 and pred_len >= 1 are required")
        if not 1 <= self.cv_steps < self.obs_len:
            raise UserError(f"train config: cv_steps must be 1..obs_len-1, got {self.cv_steps}")
        if not 0 <= self.val_fraction < 1:
            raise UserError("train config: val_fraction must be in [0, 1)")
        if self.max_windows_per_source < 1 or self.epochs < 1:
            raise UserError("train config: max_windows_per_source and epochs must be >= 1")

    @property
    def spec(self) -> FeatureSpec:
        return FeatureSpec(step_s=self.step_s, obs_len=self.obs_len, pred_len=self.pred_len,
                           cv_steps=self.cv_steps, cv_gain=self.cv_gain, box_features=self.box_features)


def is_holdout(key: str, fraction: float) -> bool:
    """Deterministic trajectory-level split shared by training and evaluation."""
    return (zlib.crc32(key.encode()) % 1000) < fraction * 1000


def source_windows(
    trajs: list[Trajectory], spec: FeatureSpec, stride: int, cap: int, rng: np.random.Generator
) -> tuple[Window, np.ndarray]:
    """A source's windows, at most `cap` of them (a seeded random subset), so big sources do not drown small ones."""
    win, fut, _ = make_windows(trajs, spec, stride)
    if len(fut) > cap:
        keep = np.sort(rng.choice(len(fut), cap, replace=False))
        win, fut = win.take(keep), fut[keep]
    return win, fut


def flip_window(win: Window, future: np.ndarray) -> tuple[Window, np.ndarray]:
    """Mirror horizontally (x -> -x): every feature is relative, so no image width is needed."""
    obs, fut = win.xywh.copy(), future.copy()
    obs[:, :, 0] *= -1
    fut[:, :, 0] *= -1
    return Window(obs, win.gap_s, win.has_box, win.frame_size), fut


def perturb_window(
    win: Window, future: np.ndarray, spec: FeatureSpec, cfg: TrainConfig, rng: np.random.Generator
) -> tuple[Window, np.ndarray]:
    """A copy faster or slower (space stretched about "now"), with detection jitter and a missed observation.

    Only the observed part gets jitter and gaps (the pipeline sees noisy, gappy detector tracks: their centres
    wobble by up to ~0.05 body heights at 0.4 s, annotations by ~0); the future stays the truth, so the model
    learns to smooth. Each window draws its own noise level, from none to `jitter` body heights.
    """
    n, t = win.gap_s.shape
    scale = window_scale(win, spec)[:, None, None]
    f = np.exp(rng.uniform(-np.log1p(cfg.speed_aug), np.log1p(cfg.speed_aug), n))[:, None, None]
    sigma = rng.uniform(0, cfg.jitter, (n, 1, 1))
    origin = win.xywh[:, -1:, :2]
    obs, fut, gap = win.xywh.copy(), future.copy(), win.gap_s.copy()
    obs[:, :, :2] = origin + (obs[:, :, :2] - origin) * f + rng.normal(0, 1, (n, t, 2)) * sigma * scale
    obs[:, :, 2:] *= np.exp(rng.normal(0, 1, (n, t, 2)) * sigma)  # box sizes wobble too (0 stays 0)
    fut[:, :, :2] = origin + (fut[:, :, :2] - origin) * f
    hit = np.flatnonzero(rng.random(n) < cfg.gap_prob)
    i = rng.integers(1, t - 1, len(hit)) if t > 2 else np.zeros(0, int)
    obs[hit, i] = (obs[hit, i - 1] + obs[hit, i + 1]) / 2
    gap[hit, i] = gap[hit, i - 1] + spec.step_s
    return Window(obs, gap, win.has_box, win.frame_size), fut


@dataclass
class Batchable:
    """Windows with their features, priors and targets as tensors."""

    feats: torch.Tensor
    prior: torch.Tensor
    target: torch.Tensor
    box_mask: torch.Tensor

    @classmethod
    def build(cls, win: Window, future: np.ndarray, spec: FeatureSpec) -> Batchable:
        frame = canonical(win, spec)
        return cls(
            torch.from_numpy(encode(win, spec, frame)),
            torch.from_numpy(velocity_prior(win, spec, spec.pred_len, frame)),
            torch.from_numpy(future_targets(win, future, spec, frame)),
            torch.from_numpy(win.has_box.astype(np.float32)),
        )

    def __len__(self) -> int:
        return len(self.feats)

    def to(self, device: torch.device) -> Batchable:
        return Batchable(self.feats.to(device), self.prior.to(device), self.target.to(device), self.box_mask.to(device))


def _loss(mean: torch.Tensor, sigma: torch.Tensor, target: torch.Tensor, box_mask: torch.Tensor,
          nll_weight: float) -> torch.Tensor:
    """Mean displacement (what ADE measures) + box size error + Gaussian NLL of the spread (mean held fixed)."""
    dist = torch.sqrt(((mean[..., :2] - target[..., :2]) ** 2).sum(-1) + 1e-6).mean()
    err = nn.functional.smooth_l1_loss(mean[..., 2:], target[..., 2:], reduction="none", beta=0.1)
    wh = (err.mean(dim=(1, 2)) * box_mask).sum() / box_mask.sum().clamp(min=1)
    z = (target[..., :2] - mean[..., :2].detach()) / sigma
    nll = (torch.log(sigma) + 0.5 * z**2).mean()
    return dist + 0.5 * wh + nll_weight * nll


@torch.no_grad()
def _ade_fde(model: TrajectoryLSTM, data: Batchable, bs: int = 4096) -> tuple[float, float]:
    model.eval()
    d = []
    for i in range(0, len(data), bs):
        mean, _ = model(data.feats[i : i + bs], data.prior[i : i + bs])
        d.append(torch.linalg.norm(mean[..., :2] - data.target[i : i + bs, :, :2], dim=-1))
    dist = torch.cat(d)
    return float(dist.mean()), float(dist[:, -1].mean())


@torch.no_grad()
def calibrate_spread(model: TrajectoryLSTM, va: Batchable, bs: int = 4096) -> None:
    """Scale the spread per step and coordinate so that validation errors are 1 sigma on average (E z^2 = 1).

    The likelihood is fitted on training windows, whose errors are smaller than new data's; a Gaussian's
    promise (39 % of points inside 1 sigma, 86 % inside 2 in 2-D) should hold on data the model did not fit.
    """
    model.eval()
    model.sigma_scale.fill_(1.0)
    z2 = []
    for i in range(0, len(va), bs):
        mean, sigma = model(va.feats[i : i + bs], va.prior[i : i + bs])
        z2.append(((va.target[i : i + bs, :, :2] - mean[..., :2]) / sigma) ** 2)
    model.sigma_scale.copy_(torch.cat(z2).mean(0).sqrt().clamp(0.1, 10.0))


def _stats(model: TrajectoryLSTM, data: Batchable) -> None:
    """Input standardisation and residual scale from the training windows; stored in the checkpoint."""
    flat = data.feats.reshape(-1, data.feats.shape[-1])
    model.feat_mean.copy_(flat.mean(0))
    model.feat_std.copy_(flat.std(0).clamp(min=1e-3))
    res = data.target - data.prior
    model.residual_std.copy_(res.std(0).clamp(min=1e-3))


def augment(win: Window, fut: np.ndarray, cfg: TrainConfig, rng: np.random.Generator) -> tuple[Window, np.ndarray]:
    """The training windows and one copy of each: mirrored, then made faster or slower, jittered and gappy."""
    copy = flip_window(win, fut) if cfg.flip else (win, fut)
    if cfg.speed_aug > 0 or cfg.jitter > 0 or cfg.gap_prob > 0:
        copy = perturb_window(*copy, cfg.spec, cfg, rng)
    if copy[0] is win:
        return win, fut
    return concat_windows([(win, fut), copy], cfg.spec)


def split_windows(
    sources: list[list[Trajectory]], cfg: TrainConfig, rng: np.random.Generator
) -> tuple[list[tuple[Window, np.ndarray]], list[tuple[Window, np.ndarray]]]:
    """Per source, capped train and validation windows; validation holds out val_fraction of its trajectories."""
    train_parts, val_parts = [], []
    for trajs in sources:
        held = [t for t in trajs if is_holdout(t.key, cfg.val_fraction)]
        kept = [t for t in trajs if not is_holdout(t.key, cfg.val_fraction)]
        train_parts.append(source_windows(kept, cfg.spec, cfg.stride, cfg.max_windows_per_source, rng))
        val_parts.append(source_windows(held, cfg.spec, cfg.stride, cfg.max_windows_per_source // 4, rng))
    return train_parts, val_parts


def prepare(cfg: TrainConfig) -> tuple[Batchable, Batchable, dict[str, Any], TrainConfig]:
    """Load the sources, split, cut windows (capped per source), tune the cv prior if asked, augment.

    Returns train and val tensors, counts (and the tuned baselines), and the config with the prior it used.
    """
    spec, rng = cfg.spec, np.random.default_rng(cfg.seed)
    skipped: Counter[str] = Counter()
    train_sets = [load(s.format, s.path, s.split, skipped) for s in cfg.train]
    if cfg.val:
        train_parts = [source_windows(t, spec, cfg.stride, cfg.max_windows_per_source, rng) for t in train_sets]
        val_sets = [load(s.format, s.path, s.split, skipped) for s in cfg.val]
        val_parts = [source_windows(t, spec, cfg.stride, cfg.max_windows_per_source, rng) for t in val_sets]
    else:
        train_parts, val_parts = split_windows(train_sets, cfg, rng)
    (tw, tf), (vw, vf) = concat_windows(train_parts, spec), concat_windows(val_parts, spec)
    counts = {"train_trajectories": sum(map(len, train_sets)), "train_windows": len(tf), "val_windows": len(vf),
              "skipped_rows": dict(skipped)}
    if cfg.tune_prior and len(tf):
        tuned = tune_baselines(tw, tf, spec)
        cfg = dataclasses.replace(cfg, cv_steps=tuned.cv_steps, cv_gain=tuned.cv_gain)
        counts["tuned_baselines"] = tuned.predictor_settings()
    return *batches(tw, tf, vw, vf, cfg, rng), counts, cfg


def batches(tw: Window, tf: np.ndarray, vw: Window, vf: np.ndarray, cfg: TrainConfig,
            rng: np.random.Generator) -> tuple[Batchable, Batchable]:
    """Augmented training tensors and plain validation tensors; refuses too little data with a clear error."""
    if len(tf) == 0 or len(vf) == 0:
        n = cfg.obs_len + cfg.pred_len
        raise UserError(f"not enough data: {len(tf)} train and {len(vf)} val windows of {n} steps of {cfg.step_s:g} s")
    tw, tf = augment(tw, tf, cfg, rng)
    return Batchable.build(tw, tf, cfg.spec), Batchable.build(vw, vf, cfg.spec)


def _run_epoch(model: TrajectoryLSTM, tr: Batchable, opt: torch.optim.Optimizer,
               sched: torch.optim.lr_scheduler.LRScheduler, perm: torch.Tensor, cfg: TrainConfig) -> float:
    """One pass over the shuffled training windows; returns the mean loss."""
    model.train()
    total = 0.0
    for i in range(0, len(tr), cfg.batch_size):
        idx = perm[i : i + cfg.batch_size]
        mean, sigma = model(tr.feats[idx], tr.prior[idx])
        loss = _loss(mean, sigma, tr.target[idx], tr.box_mask[idx], cfg.nll_weight)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        total += loss.item() * len(idx)
    return total / len(tr)


def train(cfg: TrainConfig, quiet: bool = False) -> dict[str, Any]:
    """Train on the config's sources, early-stop on validation ADE, save the best model; returns its metadata."""
    t0 = time.perf_counter()
    tr, va, counts, used = prepare(cfg)
    model, meta = fit(tr, va, used, quiet)
    meta = {"config": {**asdict(cfg), "train": [asdict(s) for s in cfg.train], "val": [asdict(s) for s in cfg.val]},
            **counts, **meta, "train_minutes": (time.perf_counter() - t0) / 60}
    save_checkpoint(cfg.out, model, used.spec, meta)
    return meta


def fit(tr: Batchable, va: Batchable, cfg: TrainConfig, quiet: bool = False) -> tuple[TrajectoryLSTM, dict[str, Any]]:
    """The training loop: one-cycle AdamW, the best epoch by validation ADE kept; returns the model (on cpu)."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    t0 = time.perf_counter()
    model = TrajectoryLSTM(ModelConfig(pred_len=cfg.pred_len, dropout=cfg.dropout, bound=cfg.bound))
    _stats(model, tr)
    dev = _device(cfg.device)
    model, tr, va = model.to(dev), tr.to(dev), va.to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * math.ceil(len(tr) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(steps, 1), pct_start=0.1)
    cv_ade, cv_fde = _ade_fde_prior(va)
    best, best_state, best_epoch, bad, history = (math.inf, math.inf), None, 0, 0, []
    log = (lambda s: None) if quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    log(f"{len(tr)} train (augmented) / {len(va)} val windows; val prior ADE/FDE {cv_ade:.3f}/{cv_fde:.3f}")
    for epoch in range(1, cfg.epochs + 1):
        loss = _run_epoch(model, tr, opt, sched, torch.randperm(len(tr), generator=gen).to(dev), cfg)
        ade, fde = _ade_fde(model, va)
        history.append({"epoch": epoch, "loss": loss, "val_ade": ade, "val_fde": fde})
        elapsed = time.perf_counter() - t0
        log(f"epoch {epoch:3d}  loss {loss:.4f}  val ADE {ade:.3f} FDE {fde:.3f}  "
            f"({elapsed / 60:.1f} min, ETA {elapsed / epoch * (cfg.epochs - epoch) / 60:.1f} min)")
        if ade < best[0]:
            best, best_epoch, bad = (ade, fde), epoch, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
        if bad >= cfg.patience or elapsed > cfg.time_limit_min * 60:
            log(f"stopping after epoch {epoch} (best epoch {best_epoch})")
            break
    model.load_state_dict(cast(dict[str, Any], best_state))  # set at the first epoch (unless its val ADE is NaN)
    calibrate_spread(model, va)
    model.cpu().eval()
    return model, {
        "best_epoch": best_epoch, "epochs_run": len(history), "val_ade_units": best[0], "val_fde_units": best[1],
        "val_prior_ade_units": cv_ade, "val_prior_fde_units": cv_fde, "history": history,
        "device": str(dev) if dev.type == "cpu" else torch.cuda.get_device_name(dev),
    }


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("train config: device cuda asked for but no CUDA GPU is available; use device: cpu")
    return torch.device(name)


def _ade_fde_prior(data: Batchable) -> tuple[float, float]:
    dist = torch.linalg.norm(data.prior[..., :2] - data.target[..., :2], dim=-1)
    return float(dist.mean()), float(dist[:, -1].mean())
