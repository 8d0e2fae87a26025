"""Training of TrajectoryLSTM on real trajectories, with the same windows and features as inference."""

from __future__ import annotations

import math
import sys
import time
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.learning.datasets import Trajectory, load, make_windows
from pipeline.errors import UserError
from pipeline.forecast.features import PRIOR_STEPS, FeatureSpec, Window, encode, future_targets, velocity_prior
from pipeline.forecast.model import ModelConfig, TrajectoryLSTM, save_checkpoint


@dataclass
class DataSource:
    """One data set: a format (ethucy|jaad|mot|tracks), a path, and for JAAD its split."""

    format: str
    path: str
    split: str = "train"


@dataclass
class TrainConfig:
    """Everything `run.py train` needs; see configs/train.yaml for a commented example."""

    train: list[DataSource] = field(default_factory=list)
    val: list[DataSource] = field(default_factory=list)  # empty: hold out val_fraction of train trajectories
    val_fraction: float = 0.15  # share of trajectories (by key) held out when no val sources are given
    step_s: float = 0.1  # model time step, seconds
    obs_len: int = 10  # observed steps
    pred_len: int = 20  # predicted steps
    stride: int = 1  # window stride in steps
    epochs: int = 40
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    dropout: float = 0.1
    patience: int = 6  # epochs without val improvement before stopping
    time_limit_min: float = 25.0  # stop training after this many minutes
    seed: int = 0
    flip: bool = True  # mirror windows horizontally as augmentation
    rotations: int = 0  # extra randomly rotated copies of point (metric) windows; pixel windows keep "down"
    speed_aug: float = 0.0  # rotated copies also get their speed scaled by a random factor in [1/(1+a), 1+a]
    prior: str = "mean"  # constant-velocity prior the LSTM corrects: "mean" window velocity, "last" or "last2" steps
    social: bool = False  # add the 3 nearest neighbours at each step to the features (same-scene objects)
    device: str = "auto"  # torch device for training: auto (cuda when available, else cpu), cpu, cuda
    out: str = "weights/traj_lstm_pixels.pt"

    def __post_init__(self) -> None:
        self.train = [s if isinstance(s, DataSource) else DataSource(**s) for s in self.train]
        self.val = [s if isinstance(s, DataSource) else DataSource(**s) for s in self.val]
        if not self.train:
            raise UserError("training needs at least one data source (train: [{format: ..., path: ...}])")
        if self.step_s <= 0 or self.obs_len < 2 or self.pred_len < 1:
            raise UserError("train config: step_s > 0, obs_len >= 2 and pred_len >= 1 are required")
        if not 0 <= self.val_fraction < 1:
            raise UserError("train config: val_fraction must be in [0, 1)")
        if self.prior not in PRIOR_STEPS:
            raise UserError(f"train config: prior must be one of {', '.join(PRIOR_STEPS)}, got {self.prior!r}")

    @property
    def spec(self) -> FeatureSpec:
        return FeatureSpec(step_s=self.step_s, obs_len=self.obs_len, pred_len=self.pred_len, prior=self.prior,
                           social=self.social)


def is_holdout(key: str, fraction: float) -> bool:
    """Deterministic trajectory-level split shared by training and evaluation."""
    return (zlib.crc32(key.encode()) % 1000) < fraction * 1000


def _load_sources(sources: list[DataSource]) -> list[Trajectory]:
    out: list[Trajectory] = []
    for s in sources:
        out += load(s.format, s.path, s.split)
    return out


def rotate_window(
    win: Window, future: np.ndarray, rng: np.random.Generator, speed_aug: float = 0.0
) -> tuple[Window, np.ndarray]:
    """Rotate point windows by a random angle about their last observed position (metric data only).

    With speed_aug, the copy is also stretched in space by a random factor (people walking faster or slower).
    """
    keep = ~win.has_box
    a = rng.uniform(0, 2 * np.pi, keep.sum())
    rot = np.stack([np.stack([np.cos(a), -np.sin(a)], -1), np.stack([np.sin(a), np.cos(a)], -1)], -2)
    if speed_aug > 0:
        rot = rot * np.exp(rng.uniform(-np.log1p(speed_aug), np.log1p(speed_aug), keep.sum()))[:, None, None]
    sub = win.take(keep)
    origin = sub.xywh[:, -1:, :2]
    obs, fut = sub.xywh.copy(), future[keep].copy()
    obs[:, :, :2] = np.einsum("nij,ntj->nti", rot, obs[:, :, :2] - origin) + origin
    fut[:, :, :2] = np.einsum("nij,ntj->nti", rot, fut[:, :, :2] - origin) + origin
    neigh = None
    if sub.neigh is not None:
        neigh = sub.neigh.copy()
        neigh[..., :2] = np.einsum("nij,ntkj->ntki", rot, neigh[..., :2] - origin[:, :, None]) + origin[:, :, None]
        neigh[..., 2:] = np.einsum("nij,ntkj->ntki", rot, neigh[..., 2:])
    return Window(obs, sub.gap_s, sub.has_box, sub.frame_size, neigh), fut


def _concat(parts: list[tuple[Window, np.ndarray]]) -> tuple[Window, np.ndarray]:
    ws = [p[0] for p in parts]
    neigh = None if ws[0].neigh is None else np.concatenate([w.neigh for w in ws])
    win = Window(np.concatenate([w.xywh for w in ws]), np.concatenate([w.gap_s for w in ws]),
                 np.concatenate([w.has_box for w in ws]), np.concatenate([w.frame_size for w in ws]), neigh)
    return win, np.concatenate([p[1] for p in parts])


def flip_window(win: Window, future: np.ndarray) -> tuple[Window, np.ndarray]:
    """Mirror horizontally (x -> W - x, or -x without an image)."""
    c = win.frame_size[:, 0][:, None]
    obs, fut = win.xywh.copy(), future.copy()
    obs[:, :, 0] = c - obs[:, :, 0]
    fut[:, :, 0] = c - fut[:, :, 0]
    neigh = None
    if win.neigh is not None:
        neigh = win.neigh.copy()
        neigh[..., 0] = c[:, :, None] - neigh[..., 0]
        neigh[..., 2] = -neigh[..., 2]
    return Window(obs, win.gap_s, win.has_box, win.frame_size, neigh), fut


@dataclass
class Batchable:
    """Windows with their features, priors and targets as tensors."""

    feats: torch.Tensor
    prior: torch.Tensor
    target: torch.Tensor
    box_mask: torch.Tensor

    @classmethod
    def build(cls, win: Window, future: np.ndarray, spec: FeatureSpec) -> Batchable:
        return cls(
            torch.from_numpy(encode(win, spec)),
            torch.from_numpy(velocity_prior(win, spec, spec.pred_len)),
            torch.from_numpy(future_targets(win, future, spec)),
            torch.from_numpy(win.has_box.astype(np.float32)),
        )

    def __len__(self) -> int:
        return len(self.feats)

    def to(self, device: torch.device) -> Batchable:
        return Batchable(self.feats.to(device), self.prior.to(device), self.target.to(device), self.box_mask.to(device))


def _loss(pred: torch.Tensor, target: torch.Tensor, box_mask: torch.Tensor) -> torch.Tensor:
    err = nn.functional.smooth_l1_loss(pred, target, reduction="none", beta=0.1)
    xy = err[..., :2].mean()
    wh = (err[..., 2:].mean(dim=(1, 2)) * box_mask).sum() / box_mask.sum().clamp(min=1)
    return xy + 0.5 * wh


@torch.no_grad()
def _ade_fde(model: TrajectoryLSTM, data: Batchable, bs: int = 2048) -> tuple[float, float]:
    model.eval()
    d = []
    for i in range(0, len(data), bs):
        p = model(data.feats[i : i + bs], data.prior[i : i + bs])
        d.append(torch.linalg.norm(p[..., :2] - data.target[i : i + bs, :, :2], dim=-1))
    dist = torch.cat(d)
    return float(dist.mean()), float(dist[:, -1].mean())


def _stats(model: TrajectoryLSTM, data: Batchable) -> None:
    """Input standardisation and residual scale from the training windows; stored in the checkpoint."""
    flat = data.feats.reshape(-1, data.feats.shape[-1])
    model.feat_mean.copy_(flat.mean(0))
    model.feat_std.copy_(flat.std(0).clamp(min=1e-3))
    res = data.target - data.prior
    model.residual_std.copy_(res.std(0).clamp(min=1e-3))


def prepare(cfg: TrainConfig) -> tuple[Batchable, Batchable, dict[str, Any]]:
    """Load the sources, split, cut windows, augment; returns train and val tensors plus counts."""
    spec = cfg.spec
    train_tr = _load_sources(cfg.train)
    if cfg.val:
        val_tr = _load_sources(cfg.val)
    else:
        val_tr = [t for t in train_tr if is_holdout(t.key, cfg.val_fraction)]
        train_tr = [t for t in train_tr if not is_holdout(t.key, cfg.val_fraction)]
    tw, tf, _ = make_windows(train_tr, spec, cfg.stride)
    vw, vf, _ = make_windows(val_tr, spec, cfg.stride)
    if len(tf) == 0 or len(vf) == 0:
        raise UserError(
            f"not enough data: {len(tf)} train and {len(vf)} val windows of {spec.obs_len + spec.pred_len} steps"
        )
    counts = {"train_trajectories": len(train_tr), "val_trajectories": len(val_tr),
              "train_windows": len(tf), "val_windows": len(vf)}
    parts = [(tw, tf)]
    if cfg.flip:
        parts.append(flip_window(tw, tf))
    rng = np.random.default_rng(cfg.seed)
    parts += [rotate_window(tw, tf, rng, cfg.speed_aug) for _ in range(cfg.rotations) if (~tw.has_box).any()]
    tw, tf = _concat(parts)
    return Batchable.build(tw, tf, spec), Batchable.build(vw, vf, spec), counts


def _run_epoch(model: TrajectoryLSTM, tr: Batchable, opt: torch.optim.Optimizer,
               sched: torch.optim.lr_scheduler.LRScheduler, perm: torch.Tensor, batch_size: int) -> float:
    """One pass over the shuffled training windows; returns the mean loss."""
    model.train()
    total = 0.0
    for i in range(0, len(tr), batch_size):
        idx = perm[i : i + batch_size]
        loss = _loss(model(tr.feats[idx], tr.prior[idx]), tr.target[idx], tr.box_mask[idx])
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        total += loss.item() * len(idx)
    return total / len(tr)


def train(cfg: TrainConfig, quiet: bool = False) -> dict[str, Any]:
    """Train, early-stop on validation ADE, save the best model; returns the training metadata."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    t0 = time.perf_counter()
    tr, va, counts = prepare(cfg)
    model = TrajectoryLSTM(ModelConfig(pred_len=cfg.pred_len, dropout=cfg.dropout))
    _stats(model, tr)
    dev = _device(cfg.device)
    model, tr, va = model.to(dev), tr.to(dev), va.to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * math.ceil(len(tr) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(steps, 1), pct_start=0.1)
    cv_ade, cv_fde = _ade_fde_prior(va)
    best = (math.inf, math.inf)
    best_state, best_epoch, bad, history = None, 0, 0, []
    log = (lambda s: None) if quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    log(f"{counts['train_windows']} train / {counts['val_windows']} val windows; val prior ADE/FDE {cv_ade:.3f}/{cv_fde:.3f}")
    for epoch in range(1, cfg.epochs + 1):
        loss = _run_epoch(model, tr, opt, sched, torch.randperm(len(tr), generator=gen).to(dev), cfg.batch_size)
        ade, fde = _ade_fde(model, va)
        history.append({"epoch": epoch, "loss": loss, "val_ade": ade, "val_fde": fde})
        elapsed = time.perf_counter() - t0
        eta = elapsed / epoch * (cfg.epochs - epoch)
        log(f"epoch {epoch:3d}  loss {loss:.4f}  val ADE {ade:.3f} FDE {fde:.3f}  "
            f"({elapsed / 60:.1f} min, ETA {eta / 60:.1f} min)")
        if ade < best[0]:
            best, best_epoch, bad = (ade, fde), epoch, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
        if bad >= cfg.patience or elapsed > cfg.time_limit_min * 60:
            log(f"stopping after epoch {epoch} (best epoch {best_epoch})")
            break
    model.load_state_dict(best_state)
    model.cpu()
    meta = {
        "config": {**asdict(cfg), "train": [asdict(s) for s in cfg.train], "val": [asdict(s) for s in cfg.val]},
        **counts, "best_epoch": best_epoch, "epochs_run": len(history),
        "val_ade_units": best[0], "val_fde_units": best[1], "val_prior_ade_units": cv_ade,
        "val_prior_fde_units": cv_fde, "train_minutes": (time.perf_counter() - t0) / 60, "history": history,
        "device": str(dev) if dev.type == "cpu" else torch.cuda.get_device_name(dev),
    }
    save_checkpoint(cfg.out, model, cfg.spec, meta)
    return meta


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("train config: device cuda asked for but no CUDA GPU is available; use device: cpu")
    return torch.device(name)


def _ade_fde_prior(data: Batchable) -> tuple[float, float]:
    dist = torch.linalg.norm(data.prior[..., :2] - data.target[..., :2], dim=-1)
    return float(dist.mean()), float(dist[:, -1].mean())
