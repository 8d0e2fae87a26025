"""Our own OpenVINO path for *_openvino_model folders: no torch, inference overlapped with the rest of the pipeline.

It reproduces ultralytics' `predict` for these exports (ultralytics stays the reference: a test compares the
two on real frames): the same letterbox (cv2 resize, grey 114 padding, centred), the same input (RGB, 0..1),
the same NMS (best class per box, class filter, per-class greedy NMS, 300 boxes at most) and the same box
scaling. What differs is how it runs:

- letterbox to the stride only (a 1920x1080 frame becomes 640x384, not 640x640) on dynamic exports;
- layout, BGR->RGB and the /255 scaling run inside the compiled graph (OpenVINO PrePostProcessor): the frame
  goes in as uint8 HWC, with no numpy/torch conversion on the main thread;
- the model is compiled for the frame's fixed letterbox shape (static shapes are faster, and OpenVINO's CPU
  plugin can crash on dynamic INT8 models on AMX CPUs: openvinotoolkit/openvino#37577), with a compiled-model
  cache so a second run starts in a fraction of a second;
- asynchronous infer requests: frame N+1 is inferred while the caller tracks, forecasts and writes frame N.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from pipeline.core.errors import UserError
from pipeline.core.types import Detections, Frame

MAX_DET = 300  # ultralytics' predict default
MAX_NMS = 30000  # boxes handed to NMS at most (ultralytics' max_nms)
MAX_WH = 7680.0  # per-class offset that keeps NMS within a class (ultralytics' max_wh)
PAD_VALUE = 114


def default_cache_dir() -> Path:
    """Where compiled models are cached: $XDG_CACHE_HOME (or ~/.cache)/trajectory-forecast/openvino."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "trajectory-forecast" / "openvino"


@dataclass(frozen=True)
class Letterbox:
    """How one frame size maps to the network input: resize to `unpad` (w, h), then pad to `shape` (h, w)."""

    src: tuple[int, int]  # frame (h, w)
    shape: tuple[int, int]  # network input (h, w)
    unpad: tuple[int, int]  # resized frame (w, h)
    top: int
    bottom: int
    left: int
    right: int

    @classmethod
    def fit(cls, src_hw: tuple[int, int], imgsz: int, stride: int, rect: bool) -> Letterbox:
        """ultralytics' LetterBox(imgsz, auto=rect, stride) parameters (scale-up allowed, centred padding)."""
        h, w = src_hw
        r = min(imgsz / h, imgsz / w)
        unpad = (max(round(w * r), 1), max(round(h * r), 1))
        dw: float
        dh: float
        dw, dh = imgsz - unpad[0], imgsz - unpad[1]
        if rect:
            dw, dh = dw % stride, dh % stride
        dw, dh = dw / 2, dh / 2
        top, bottom = round(dh - 0.1), round(dh + 0.1)
        left, right = round(dw - 0.1), round(dw + 0.1)
        return cls((h, w), (unpad[1] + top + bottom, unpad[0] + left + right), unpad, top, bottom, left, right)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """The padded network input (uint8 HWC BGR, contiguous)."""
        if image.shape[:2] != self.src:
            raise ValueError(f"frame size {image.shape[1]}x{image.shape[0]} changed from {self.src[1]}x{self.src[0]}")
        if (image.shape[1], image.shape[0]) != self.unpad:
            image = cv2.resize(image, self.unpad, interpolation=cv2.INTER_LINEAR)
        return cv2.copyMakeBorder(image, self.top, self.bottom, self.left, self.right, cv2.BORDER_CONSTANT,
                                  value=(PAD_VALUE,) * 3)

    def to_source(self, xyxy: np.ndarray) -> np.ndarray:
        """Network-input boxes -> frame pixels, clipped to the frame (ultralytics' scale_boxes)."""
        h, w = self.src
        gx, gy = self.unpad[0] / w, self.unpad[1] / h
        pad_x = round((self.shape[1] - self.unpad[0]) / 2 - 0.1)
        pad_y = round((self.shape[0] - self.unpad[1]) / 2 - 0.1)
        out = (xyxy - np.array([pad_x, pad_y, pad_x, pad_y], np.float32)) / np.array([gx, gy, gx, gy], np.float32)
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, w)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, h)
        return out


def decode(raw: np.ndarray, conf: float, iou: float, class_ids: np.ndarray | None,
           max_det: int = MAX_DET) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw YOLO output (4 + classes, boxes) -> xyxy, confidence, class in network-input pixels, after NMS.

    The same steps as ultralytics' non_max_suppression (best class only, not agnostic), vectorised: the
    candidate filter in numpy, the greedy NMS in OpenCV's C++ (cv2.dnn.NMSBoxes, the same IoU > iou rule).
    """
    scores = raw[4:]
    keep = scores.max(axis=0) > conf
    cand = raw[:, keep]
    cls = cand[4:].argmax(axis=0)
    score = cand[4 + cls, np.arange(cand.shape[1])]
    if class_ids is not None:
        m = np.isin(cls, class_ids)
        cand, cls, score = cand[:, m], cls[m], score[m]
    if len(score) > MAX_NMS:
        top = np.argsort(-score, kind="stable")[:MAX_NMS]
        cand, cls, score = cand[:, top], cls[top], score[top]
    xy, wh = cand[:2].T, cand[2:4].T
    xyxy = np.concatenate([xy - wh / 2, xy + wh / 2], axis=1).astype(np.float32)
    if len(score) == 0:
        return xyxy, score.astype(np.float32), cls.astype(np.int64)
    offset = cls.astype(np.float64)[:, None] * MAX_WH
    rects = np.concatenate([xyxy[:, :2] + offset, wh], axis=1)  # x, y, w, h, each class far from the others
    idx = np.asarray(cv2.dnn.NMSBoxes(rects, score.astype(np.float32), 0.0, iou), np.int64).reshape(-1)[:max_det]
    return xyxy[idx], score[idx].astype(np.float32), cls[idx].astype(np.int64)


def read_metadata(folder: Path) -> dict[str, Any]:
    """The export's metadata.yaml (class names, stride, dynamic); one-line error when unusable."""
    meta_file = folder / "metadata.yaml"
    try:
        meta = yaml.safe_load(meta_file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {meta_file} ({type(exc).__name__}); re-export the model with "
                        "`yolo export format=openvino`") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("names"), dict) or meta.get("task", "detect") != "detect":
        raise UserError(f"{meta_file} does not describe a detection model with class names; re-export it")
    return meta


@dataclass
class _Slot:
    """One frame in flight: its request and what its result needs."""

    frame: Frame
    request: Any
    box: Letterbox
    image: np.ndarray  # the network input: OpenVINO reads it in place until the request is done


class OpenVinoDetector:
    """An *_openvino_model export run with OpenVINO directly (see the module doc)."""

    def __init__(self, folder: Path, conf: float, iou: float, imgsz: int, rect: bool = True,
                 cache_dir: str = "", requests: int = 2) -> None:
        import openvino as ov  # the only module here that needs it

        self.folder, self.conf, self.iou, self.imgsz = folder, conf, iou, imgsz
        meta = read_metadata(folder)
        self.names: dict[int, str] = {int(k): str(v) for k, v in meta["names"].items()}
        self.stride = int(meta.get("stride", 32))
        self.class_ids: np.ndarray | None = None
        self._requests = max(1, requests)
        self._core = ov.Core()
        self._cache_note = self._set_cache(cache_dir)
        xml = next(iter(sorted(folder.glob("*.xml"))))
        try:
            model = self._core.read_model(str(xml), str(xml.with_suffix(".bin")))
        except RuntimeError as exc:
            raise UserError(f"cannot load detector weights '{folder}': {str(exc).strip().splitlines()[0][:200]}") from None
        fixed = model.input().get_partial_shape()
        self.dynamic = fixed.is_dynamic
        # a fixed export only takes its own size; ultralytics pads to it (square) whatever rect says
        self.rect = rect and self.dynamic
        if not self.dynamic:
            self.imgsz = int(fixed[2].get_length())
        self._model = self._with_preprocessing(ov, model)
        self._compiled: dict[tuple[int, int], Any] = {}
        self._compiling: dict[tuple[int, int], tuple[threading.Thread, dict[str, Any]]] = {}
        self._sync: dict[tuple[int, int], Any] = {}  # one request per shape for detect()
        self._boxes: dict[tuple[int, int], Letterbox] = {}

    def _set_cache(self, cache_dir: str) -> str:
        """Compiled-model cache (start-up in ~0.1 s instead of ~1 s); off with 'off' or when not writable."""
        if cache_dir == "off":
            return "off"
        path = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            print(f"note: no OpenVINO model cache ({path}: {exc.strerror}); start-up compiles the model each run",
                  file=sys.stderr)
            return "unwritable"
        if not os.access(path, os.W_OK):
            print(f"note: no OpenVINO model cache ({path} is not writable); start-up compiles the model each run",
                  file=sys.stderr)
            return "unwritable"
        self._core.set_property({"CACHE_DIR": str(path)})
        return str(path)

    @staticmethod
    def _with_preprocessing(ov: Any, model: Any) -> Any:
        """uint8 NHWC BGR in; conversion to f32, BGR->RGB, /255 and NCHW inside the graph."""
        from openvino.preprocess import ColorFormat, PrePostProcessor

        ppp = PrePostProcessor(model)
        inp = ppp.input()
        inp.tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")).set_color_format(ColorFormat.BGR)
        inp.model().set_layout(ov.Layout("NCHW"))
        inp.preprocess().convert_element_type(ov.Type.f32).convert_color(ColorFormat.RGB).scale(255.0)
        return ppp.build()

    def set_classes(self, class_ids: list[int] | None) -> None:
        self.class_ids = None if class_ids is None else np.asarray(class_ids, np.int64)

    def letterbox(self, hw: tuple[int, int]) -> Letterbox:
        if hw not in self._boxes:
            self._boxes[hw] = Letterbox.fit(hw, self.imgsz, self.stride, self.rect)
        return self._boxes[hw]

    def prepare(self, hw: tuple[int, int]) -> None:
        """Start compiling for frames of this (h, w) in a background thread.

        OpenVINO compiles without the GIL, so the other stages' imports and model loading (torch, the LSTM,
        the tracker) overlap it: part of the start-up target. The first frame waits for it (_compiled_for).
        """
        shape = self.letterbox(hw).shape
        if shape in self._compiled or shape in self._compiling:
            return
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["model"] = self._compile(shape)
            except BaseException as exc:  # handed to the first frame's _compiled_for, not swallowed
                box["error"] = exc

        thread = threading.Thread(target=run, name="openvino-compile", daemon=True)
        thread.start()
        self._compiling[shape] = (thread, box)

    def _compiled_for(self, shape: tuple[int, int]) -> Any:
        """The model compiled for one input shape (one per frame size; from the cache after the first run)."""
        if shape in self._compiling:
            thread, box = self._compiling.pop(shape)
            thread.join()
            if "error" in box:
                raise box["error"]
            self._compiled[shape] = box["model"]
        if shape not in self._compiled:
            self._compiled[shape] = self._compile(shape)
        return self._compiled[shape]

    def _compile(self, shape: tuple[int, int]) -> Any:
        model = self._model.clone()
        if self.dynamic:
            model.reshape([1, shape[0], shape[1], 3])
        try:
            return self._core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY"})
        except RuntimeError as exc:
            raise UserError(f"cannot compile '{self.folder}' for OpenVINO: "
                            f"{str(exc).strip().splitlines()[0][:200]}") from None

    def _result(self, raw: np.ndarray, box: Letterbox) -> Detections:
        xyxy, conf, cls = decode(raw[0], self.conf, self.iou, self.class_ids)
        return Detections(box.to_source(xyxy), conf, cls)

    def detect(self, image: np.ndarray) -> Detections:
        """Detect objects in one BGR image (synchronously)."""
        box = self.letterbox(image.shape[:2])
        return self._result(self.infer_raw(box.apply(image)), box)

    def infer_raw(self, x: np.ndarray) -> np.ndarray:
        """The network alone on one letterboxed uint8 HWC input: its raw output (also the bench's bare inference)."""
        shape = (int(x.shape[0]), int(x.shape[1]))
        if shape not in self._sync:
            self._sync[shape] = self._compiled_for(shape).create_infer_request()
        request = self._sync[shape]
        request.infer({0: x[None]}, share_inputs=True)
        return request.get_output_tensor(0).data

    def stream(self, frames: Iterable[Frame], ahead: int = 2) -> Iterator[tuple[Frame, Detections]]:
        """Frames with their detections, in order; up to `requests` frames are inferred while the caller works.

        Decoding and letterboxing run `ahead` frames ahead in a background thread (OpenCV releases the GIL).
        Plain infer requests with start_async/wait rather than AsyncInferQueue callbacks: results come back in
        frame order without a callback thread, and an inference error surfaces here, at wait().
        """
        prepared = ((f, self.letterbox(f.image.shape[:2])) for f in frames)
        inputs: Iterator[tuple[Frame, Letterbox, np.ndarray]] = ((f, box, box.apply(f.image)) for f, box in prepared)
        if ahead > 0:
            from pipeline.core.threads import prefetch

            inputs = prefetch(inputs, ahead)
        pending: deque[_Slot] = deque()
        free: dict[tuple[int, int], deque[Any]] = {}
        try:
            for frame, box, x in inputs:
                if box.shape not in free:  # one set of requests per input shape (a stream may change size)
                    compiled = self._compiled_for(box.shape)
                    free[box.shape] = deque(compiled.create_infer_request() for _ in range(self._requests))
                while not free[box.shape]:
                    yield self._finish(pending.popleft(), free)
                request = free[box.shape].popleft()
                request.start_async({0: x[None]}, share_inputs=True)  # x lives in the slot until done
                pending.append(_Slot(frame, request, box, x))
                if len(pending) >= self._requests:
                    yield self._finish(pending.popleft(), free)
            while pending:
                yield self._finish(pending.popleft(), free)
        finally:  # the caller stopped early (max frames, Ctrl-C): nothing left running on our buffers
            for slot in pending:
                slot.request.wait()
            close = getattr(inputs, "close", None)
            if close is not None:
                close()

    def _finish(self, slot: _Slot, free: dict[tuple[int, int], deque[Any]]) -> tuple[Frame, Detections]:
        slot.request.wait()
        dets = self._result(slot.request.get_output_tensor(0).data, slot.box)
        free[slot.box.shape].append(slot.request)
        return slot.frame, dets
