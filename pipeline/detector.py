"""The only place that talks to ultralytics' YOLO: resolves weights, runs it, returns `Detections`."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from pipeline.config import DetectorConfig
from pipeline.errors import UserError
from pipeline.types import Detections, Frame

os.environ.setdefault("YOLO_VERBOSE", "False")

PROJECT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights"


def resolve_weights(name: str, weights_dir: Path = PROJECT_WEIGHTS) -> str:
    """Find detector weights: an existing path, then `weights/<name>`, then a name ultralytics may download.

    Returns what to hand to `YOLO(...)`. Offline with nothing local, ultralytics' download fails and
    `YoloDetector` turns that into a one-line message.
    """
    p = Path(name).expanduser()
    if p.exists():
        return str(p)
    local = weights_dir / name
    if local.exists():
        return str(local)
    if len(p.parts) > 1:
        raise UserError(f"detector weights not found: {name} (check --weights)")
    return name


def _clean(exc: Exception) -> str:
    """First line of an ultralytics message without its 'ERROR ❌' decoration."""
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return re.sub(r"^[^\w/]*ERROR[^\w/]*", "", line)[:240]


def _task_for(path: str) -> str | None:
    """Exported models (OpenVINO dirs, ONNX) cannot tell ultralytics their task from the file alone."""
    return "detect" if (Path(path).is_dir() or path.endswith((".onnx", ".engine", ".xml"))) else None


class YoloDetector:
    """Runs an ultralytics YOLO model on BGR frames and keeps only the configured classes."""

    def __init__(self, config: DetectorConfig) -> None:
        from ultralytics import YOLO  # heavy import kept at the edge

        self.config = config
        source = resolve_weights(config.weights)
        try:
            self.model = YOLO(source, task=_task_for(source))
        except FileNotFoundError:
            raise UserError(
                f"detector weights '{config.weights}' not found locally and could not be downloaded; "
                f"put the file in {PROJECT_WEIGHTS}/ or pass --weights PATH (e.g. an *_openvino_model folder)"
            ) from None
        except (ConnectionError, OSError) as exc:
            raise UserError(
                f"cannot download detector weights '{config.weights}' ({type(exc).__name__}); "
                f"offline? put the file in {PROJECT_WEIGHTS}/ or pass --weights PATH"
            ) from None
        except (ImportError, ModuleNotFoundError) as exc:
            raise UserError(f"cannot load '{source}': missing package ({exc.name}); run `make setup`") from None
        except Exception as exc:  # ultralytics raises many types for unusable files
            raise UserError(f"cannot load detector weights '{source}': {_clean(exc)}") from None
        self.names: dict[int, str] = {int(k): str(v) for k, v in self.model.names.items()}
        self.class_ids = self._class_ids(config.classes)

    def _class_ids(self, classes: list[str]) -> list[int] | None:
        if not classes:
            return None
        by_name = {v: k for k, v in self.names.items()}
        unknown = [c for c in classes if c not in by_name]
        if unknown:
            sample = ", ".join(list(by_name)[:12])
            raise UserError(f"unknown class name(s) {', '.join(unknown)}; this model knows e.g.: {sample}, ...")
        return sorted(by_name[c] for c in classes)

    def detect(self, image: np.ndarray) -> Detections:
        """Detect objects in one BGR image."""
        c = self.config
        result = self.model.predict(
            image, conf=c.conf, iou=c.iou, imgsz=c.imgsz, device=c.device, classes=self.class_ids, verbose=False
        )[0]
        boxes = result.boxes.cpu().numpy()
        return Detections(boxes.xyxy, boxes.conf, boxes.cls.astype(np.int64))


def detections_stream(
    detector: YoloDetector, frames: Iterable[Frame], ahead: int = 0
) -> Iterator[tuple[Frame, Detections]]:
    """Frames paired with their detections, in order.

    With ahead > 0, decoding and detection run in one background thread up to `ahead` frames before the
    consumer (inference releases the GIL), so tracking and writing overlap with it. The detector is
    ultralytics' own synchronous call either way, so the detections are identical.
    """
    pairs = ((f, detector.detect(f.image)) for f in frames)
    if ahead <= 0:
        yield from pairs
    else:
        from pipeline.io_threads import prefetch

        yield from prefetch(pairs, ahead)
