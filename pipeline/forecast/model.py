"""TrajectoryLSTM and its self-describing checkpoint (model config + feature spec + normalisation stats)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.core.errors import UserError
from pipeline.forecast.features import FEATURE_DIM, FeatureSpec

CHECKPOINT_FORMAT = "traj-lstm/2"


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the network; the LSTM core is fixed by the product (512 -> 128, 2 layers)."""

    pred_len: int = 20
    hidden_size: int = 128
    num_layers: int = 2
    dropout: float = 0.1
    head_hidden: int = 256
    bound: float = 3.0  # the residual on the cv prior is at most this many training residual spreads


class TrajectoryLSTM(nn.Module):
    """Encodes a window of 512-d features with an LSTM and predicts H future (dx, dy, dlogw, dlogh) and a spread.

    The mean is a *bounded* residual on the tuned constant-velocity prior (at most `bound` residual spreads
    of the training data per step and coordinate), so where the model knows nothing it stays with cv. The
    spread is a 1-sigma along and across the heading per step (trained with a Gaussian likelihood). Inputs
    are standardised with statistics stored as buffers, so they travel inside the checkpoint.
    """

    # the buffers registered in __init__ (declared for the type checker: nn.Module's attributes are untyped)
    feat_mean: torch.Tensor
    feat_std: torch.Tensor
    residual_std: torch.Tensor
    sigma_scale: torch.Tensor

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.lstm = nn.LSTM(
            input_size=FEATURE_DIM, hidden_size=cfg.hidden_size, num_layers=cfg.num_layers,
            batch_first=True, dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
        )
        self.head = nn.Sequential(
            nn.Linear(cfg.hidden_size, cfg.head_hidden), nn.GELU(), nn.Linear(cfg.head_hidden, cfg.pred_len * 6)
        )
        self.register_buffer("feat_mean", torch.zeros(FEATURE_DIM))
        self.register_buffer("feat_std", torch.ones(FEATURE_DIM))
        # per step and coordinate: a first-step residual is ~10x smaller than a last-step one
        self.register_buffer("residual_std", torch.ones(cfg.pred_len, 4))
        # per step and coordinate: the spread's calibration on validation windows (temperature scaling)
        self.register_buffer("sigma_scale", torch.ones(cfg.pred_len, 2))

    def forward(self, feats: torch.Tensor, prior: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """feats (B, T, 512), prior (B, H, 4) -> predicted targets (B, H, 4) and their 1-sigma (B, H, 2)."""
        x = (feats - self.feat_mean) / self.feat_std
        out, _ = self.lstm(x)
        raw = self.head(out[:, -1]).view(-1, self.cfg.pred_len, 6)
        b = self.cfg.bound
        mean = prior + b * torch.tanh(raw[..., :4] / b) * self.residual_std
        sigma = self.residual_std[:, :2] * self.sigma_scale * torch.exp(raw[..., 4:].clamp(-6.0, 4.0))
        return mean, sigma


def save_checkpoint(path: str | Path, model: TrajectoryLSTM, spec: FeatureSpec, meta: dict[str, Any]) -> None:
    """Write everything needed to rebuild and use the model."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "model": asdict(model.cfg),
            "features": spec.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "meta": meta,
        },
        path,
    )


def load_checkpoint(path: str | Path) -> tuple[TrajectoryLSTM, FeatureSpec, dict[str, Any]]:
    """Rebuild a model from its checkpoint; every failure is a one-line `UserError`."""
    path = Path(path)
    hint = "train one with `python run.py train` or pick --predictor cv|kalman"
    if not path.is_file():
        raise UserError(f"LSTM checkpoint not found: {path}; {hint}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for non-checkpoint files
        raise UserError(f"{path} is not a readable checkpoint ({type(exc).__name__}); {hint}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path} is not a {CHECKPOINT_FORMAT} checkpoint; {hint}")
    try:
        spec = FeatureSpec(**ckpt["features"])
        cfg = ModelConfig(**ckpt["model"])
    except (TypeError, ValueError) as exc:
        raise UserError(f"{path} has an incompatible config ({exc}); {hint}") from None
    if spec.version != FeatureSpec().version:
        raise UserError(f"{path} uses feature version {spec.version}, this code {FeatureSpec().version}; retrain it")
    if cfg.pred_len != spec.pred_len:
        raise UserError(f"{path} is inconsistent: model predicts {cfg.pred_len} steps, features say {spec.pred_len}")
    model = TrajectoryLSTM(cfg)
    state = {"sigma_scale": model.sigma_scale, **ckpt["state_dict"]}  # checkpoints before spread calibration: 1
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise UserError(f"{path} does not match TrajectoryLSTM: {str(exc).splitlines()[0]}") from None
    model.eval()
    return model, spec, dict(ckpt.get("meta", {}))
