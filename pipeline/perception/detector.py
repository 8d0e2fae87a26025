"""The detector boundary: resolves weights, picks the backend, returns `Detections`.

*_openvino_model folders run on our own OpenVINO path (openvino_detector.py: no torch, inference overlapped with
the rest of the pipeline, the same detections as ultralytics' predict); everything else (.pt, .onnx, ...) and
`detector.backend: ultralytics` runs ultralytics' YOLO.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np

from pipeline.core import resources
from pipeline.core.config import DetectorConfig
from pipeline.core.errors import UserError
from pipeline.core.types import Detections, Frame

os.environ.setdefault("YOLO_VERBOSE", "False")
# ultralytics' own restricted checkpoint loading: torch.load(weights_only=True) with its model-class allow-list,
# and model construction without eval(). Read when ultralytics is first imported; forced again in YoloDetector.
os.environ["ULTRALYTICS_SAFE_LOAD"] = "1"

def resolve_weights(name: str, weights_dirs: Iterable[Path] | None = None) -> str:
    """Find detector weights: an existing path, then `<name>` in the checkout's weights/ or among the shipped
    weights (resources.weights_dirs()), then a name ultralytics may download.

    Returns what to hand to `YOLO(...)`. Offline with nothing local, ultralytics' download fails and
    `YoloDetector` turns that into a one-line message.
    """
    p = Path(name).expanduser()
    if p.exists():
        return str(p)
    for folder in resources.weights_dirs() if weights_dirs is None else weights_dirs:
        if (folder / name).exists():
            return str(folder / name)
    if len(p.parts) > 1:
        raise UserError(f"detector weights not found: {name} (check --weights)")
    return name


def _clean(exc: Exception) -> str:
    """First line of an ultralytics message without its 'ERROR ❌' decoration."""
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return re.sub(r"^[^\w/]*ERROR[^\w/]*", "", line)[:240]


# What a detector checkpoint's pickle may name besides torch's own safe globals: model classes (checked to be
# nn.Module subclasses) from these packages, and a few plain data types ultralytics stores in its metadata.
_MODULE_PACKAGES = ("torch.nn.modules.", "ultralytics.nn.")
_DATA_GLOBALS = {
    "types.SimpleNamespace", "ultralytics.utils.IterableSimpleNamespace", "pathlib.PosixPath", "pathlib.WindowsPath",
    "numpy.dtype", "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "numpy.core.multiarray._reconstruct",
    "numpy._core.multiarray._reconstruct", "numpy.ndarray",
}


def _is_model_class(name: str) -> bool:
    """True for e.g. ultralytics.nn.modules.conv.Conv: a torch Module class from a model package."""
    import importlib

    import torch

    module, _, attr = name.rpartition(".")
    if not module.startswith(_MODULE_PACKAGES):
        return False
    try:
        obj = getattr(importlib.import_module(module), attr, None)
    except ImportError:
        return False
    return isinstance(obj, type) and issubclass(obj, torch.nn.Module)


def check_checkpoint(path: Path) -> None:
    """Refuse a .pt whose pickle names anything but model classes and plain data, before anything unpickles it.

    torch lists the globals by reading the pickle's opcodes; nothing in the file is executed. A pickle that
    imports e.g. os.system would run it on load, so such a file never reaches ultralytics.
    """
    import torch

    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except (ValueError, RuntimeError, OSError, EOFError) as exc:
        raise UserError(f"cannot load detector weights '{path}': not a PyTorch checkpoint ({_clean(exc)})") from None
    bad = [n for n in names if n not in _DATA_GLOBALS and not _is_model_class(n)]
    if bad:
        raise UserError(
            f"refusing detector weights '{path}': its pickle would call {', '.join(sorted(bad)[:3])}, which is not "
            "part of a model (files are never allowed to run code); use weights from a source you trust"
        )


MODEL_SUFFIXES = {".pt", ".pth", ".onnx", ".torchscript", ".engine", ".tflite", ".mnn"}


def check_weights_file(source: str) -> None:
    """Refuse what ultralytics would only fail on at the first frame (or run): wrong kinds of files and folders."""
    p = Path(source)
    if not p.exists():
        return  # a bare name ultralytics may download
    if p.is_dir():
        if not p.name.endswith("_openvino_model"):
            raise UserError(f"detector weights '{source}' is a folder but not an *_openvino_model export; "
                            "pass a .pt file or an *_openvino_model folder")
        xml = next(iter(sorted(p.glob("*.xml"))), None)
        if xml is None or not xml.with_suffix(".bin").is_file():
            raise UserError(f"detector weights folder '{source}' holds no model .xml + .bin pair; re-export it "
                            "with `yolo export format=openvino`")
    elif not p.is_file():
        raise UserError(f"detector weights '{source}' is not a regular file (a FIFO, device or socket)")
    elif p.suffix.lower() not in MODEL_SUFFIXES:
        raise UserError(f"detector weights '{source}' is not a model file (expected one of "
                        f"{', '.join(sorted(MODEL_SUFFIXES))} or an *_openvino_model folder)")
    elif p.stat().st_size == 0:
        raise UserError(f"detector weights file '{source}' is empty; download or export it again")
    elif p.suffix.lower() in (".pt", ".pth"):
        check_checkpoint(p)


def _task_for(path: str) -> str | None:
    """Exported models (OpenVINO dirs, ONNX) cannot tell ultralytics their task from the file alone."""
    return "detect" if (Path(path).is_dir() or path.endswith((".onnx", ".engine", ".xml"))) else None


class YoloDetector:
    """Runs an ultralytics YOLO model on BGR frames and keeps only the configured classes."""

    def __init__(self, config: DetectorConfig) -> None:
        from ultralytics import YOLO  # heavy import kept at the edge

        import ultralytics.nn.tasks

        ultralytics.nn.tasks.SAFE_LOAD = True  # in case ultralytics was imported before the variable above was set
        self.config = config
        source = self.source = resolve_weights(config.weights)
        check_weights_file(source)
        self.device = resolve_device(config.device, openvino=False)  # before loading: a bad --device fails fast
        self.half = use_half(config.half, self.device, openvino=is_openvino(source))
        self._loaded = False
        try:
            self.model = YOLO(source, task=_task_for(source))
            # exported models are opened here: asking for the class names sets up ultralytics' predictor
            self.names: dict[int, str] = {int(k): str(v) for k, v in self.model.names.items()}
        except FileNotFoundError:
            raise UserError(
                f"detector weights '{config.weights}' not found locally and could not be downloaded; "
                f"{resources.weights_hint()} or pass --weights PATH (e.g. an *_openvino_model folder)"
            ) from None
        except (ConnectionError, OSError) as exc:
            raise UserError(
                f"cannot download detector weights '{config.weights}' ({type(exc).__name__}); "
                f"offline? {resources.weights_hint()} or pass --weights PATH"
            ) from None
        except (ImportError, ModuleNotFoundError) as exc:
            raise UserError(f"cannot load '{source}': missing package ({exc.name}); run `make setup`") from None
        except Exception as exc:  # ultralytics raises many types for unusable files
            raise UserError(f"cannot load detector weights '{source}': {_clean(exc)}") from None
        self.class_ids = self._class_ids(config.classes)

    def _class_ids(self, classes: list[str]) -> list[int] | None:
        return class_ids(self.names, classes)

    def prepare(self, frame_size: tuple[int, int]) -> None:
        """Nothing to do ahead: ultralytics sets its model up at the first prediction (warm-up)."""

    def detect(self, image: np.ndarray) -> Detections:
        """Detect objects in one BGR image."""
        c = self.config
        try:
            result = cast(list[Any], self.model.predict(  # a list of Results without stream=True
                image, conf=c.conf, iou=c.iou, imgsz=c.imgsz, device=self.device, classes=self.class_ids, verbose=False,
                half=self.half,
            ))[0]
        except Exception as exc:
            if self._loaded:
                raise  # a failure after the model ran once is a bug, not the weights file
            # exported models (OpenVINO, ONNX) are only opened by ultralytics at the first prediction
            raise UserError(f"cannot load detector weights '{self.source}': {_clean(exc)}") from None
        self._loaded = True
        boxes = result.boxes.cpu().numpy()
        return Detections(boxes.xyxy, boxes.conf, boxes.cls.astype(np.int64))

    def stream(self, frames: Iterable[Frame], ahead: int = 0) -> Iterator[tuple[Frame, Detections]]:
        """Frames with their detections, in order.

        With ahead > 0, decoding and detection run in one background thread up to `ahead` frames before the
        consumer (inference releases the GIL), so tracking and writing overlap with it. The detector is
        ultralytics' own synchronous call either way, so the detections are identical.
        """
        pairs = ((f, self.detect(f.image)) for f in frames)
        if ahead <= 0:
            yield from pairs
        else:
            from pipeline.core.threads import prefetch

            yield from prefetch(pairs, ahead)


def class_ids(names: dict[int, str], classes: list[str]) -> list[int] | None:
    """Class names or COCO indexes (as ultralytics users type them, 0 = person) -> sorted ids; None keeps all."""
    if not classes:
        return None
    by_name = {v: k for k, v in names.items()}
    by_name.update({str(k): k for k in names})
    unknown = [c for c in classes if c.strip() not in by_name]
    if unknown:
        sample = ", ".join(list(names.values())[:12])
        raise UserError(f"unknown class name(s) {', '.join(unknown)}; this model knows e.g.: {sample}, ... "
                        f"(or their indexes 0..{max(names)})")
    return sorted({by_name[c.strip()] for c in classes})


def resolve_device(device: str, openvino: bool) -> str:
    """auto | cpu | cuda:N (or N) -> the device to run on; one-line errors for what this machine cannot do.

    OpenVINO exports run on the CPU here. torch is imported only to look for a GPU (.pt weights import it anyway).
    """
    d = device.strip().lower()
    if d in ("", "auto"):
        if openvino:
            return "cpu"
        import torch

        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if d == "cpu":
        return "cpu"
    m = re.fullmatch(r"(?:cuda:)?(\d+)|cuda", d)
    if m is None:
        raise UserError(f"--device must be auto, cpu or cuda:N, got {device!r}")
    if openvino:
        raise UserError(f"--device {device}: *_openvino_model weights run on the CPU here; use --device cpu (or auto), "
                        "or .pt weights (e.g. --weights yolo11n.pt) to detect on the GPU")
    import torch

    index = int(m.group(1) or 0)
    if not torch.cuda.is_available():
        raise UserError(f"--device {device}: no CUDA GPU is available on this machine (torch sees none); "
                        "use --device cpu or auto")
    if index >= torch.cuda.device_count():
        raise UserError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                        f"cuda:0..cuda:{torch.cuda.device_count() - 1}")
    return f"cuda:{index}"


def use_half(half: bool, device: str, openvino: bool) -> bool:
    """FP16 only where it exists (.pt weights on CUDA); elsewhere one warning line and full precision/INT8."""
    if not half:
        return False
    if device.startswith("cuda") and not openvino:
        return True
    what = "an INT8/FP OpenVINO export runs as exported" if openvino else "FP16 on the CPU is slower, not faster"
    print(f"warning: --half ignored on {device} ({what}); it applies to .pt weights on CUDA", file=sys.stderr)
    return False


def is_openvino(source: str) -> bool:
    p = Path(source)
    return p.is_dir() and p.name.endswith("_openvino_model")


class OpenVinoYolo:
    """An *_openvino_model export on our own OpenVINO path (see openvino_detector.py), with this module's checks."""

    def __init__(self, config: DetectorConfig, source: str) -> None:
        from pipeline.perception.openvino_detector import OpenVinoDetector

        self.config, self.source = config, source
        self.device = resolve_device(config.device, openvino=True)
        self.half = use_half(config.half, self.device, openvino=True)
        self._impl = OpenVinoDetector(Path(source), config.conf, config.iou, config.imgsz, rect=config.rect,
                                      cache_dir=config.cache_dir, requests=config.infer_requests)
        self.names = self._impl.names
        self.class_ids = class_ids(self.names, config.classes)
        self._impl.set_classes(self.class_ids)

    def prepare(self, frame_size: tuple[int, int]) -> None:
        """Compile for frames of (width, height) in the background while the other stages load."""
        self._impl.prepare((frame_size[1], frame_size[0]))

    def detect(self, image: np.ndarray) -> Detections:
        """Detect objects in one BGR image (synchronously)."""
        return self._impl.detect(image)

    def network_input(self, image: np.ndarray) -> np.ndarray:
        """The letterboxed uint8 input the network sees for this frame."""
        return self._impl.letterbox(image.shape[:2]).apply(image)

    def infer_raw(self, x: np.ndarray) -> np.ndarray:
        """The network alone on a `network_input` (for the bench's bare-inference row)."""
        return self._impl.infer_raw(x)

    def stream(self, frames: Iterable[Frame], ahead: int = 0) -> Iterator[tuple[Frame, Detections]]:
        """Frames with detections, in order; inference of the next frame overlaps the caller's work on this one."""
        return self._impl.stream(frames, ahead)


Detector = YoloDetector | OpenVinoYolo


def build_detector(config: DetectorConfig) -> Detector:
    """Our OpenVINO path for *_openvino_model folders (unless detector.backend is ultralytics), else ultralytics."""
    source = resolve_weights(config.weights)
    if config.backend == "auto" and is_openvino(source):
        check_weights_file(source)
        return OpenVinoYolo(config, source)
    return YoloDetector(config)


def detections_stream(detector: Detector, frames: Iterable[Frame], ahead: int = 0) -> Iterator[tuple[Frame, Detections]]:
    """Frames paired with their detections, in order (see each detector's `stream`)."""
    return detector.stream(frames, ahead)
