"""Run `run.py` in a subprocess with a fault injected at an exact point, so signal tests never race the clock.

Usage: `python -m tests.faults ARGS...` with the fault in the environment:
- FAULT_SIGINT_AT=N: the process sends itself SIGINT while processing frame N (0-based).
- FAULT_SIGINT_ON_CLOSE=1: and another SIGINT as each output file starts closing (the writer thread's
  drain, the video's finalising, each CSV): a double (triple, ...) Ctrl-C during shutdown.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

from pipeline.core import threads as io_threads

from pipeline.apps import processing

from pipeline.io import writers
from pipeline.core.types import Detections, Frame


def _signal_first(close: Callable[..., None]) -> Callable[..., None]:
    def signal_then_close(self: object, *args: object) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        close(self, *args)

    return signal_then_close


def _install() -> None:
    at = os.environ.get("FAULT_SIGINT_AT")
    if at is not None:
        update = processing.FrameProcessor.update

        def update_then_signal(self: processing.FrameProcessor, frame: Frame, dets: Detections) -> object:
            if frame.index == int(at):
                os.kill(os.getpid(), signal.SIGINT)
            return update(self, frame, dets)

        processing.FrameProcessor.update = update_then_signal
    if os.environ.get("FAULT_SIGINT_ON_CLOSE"):
        writers.VideoSink.__exit__ = _signal_first(writers.VideoSink.__exit__)
        writers._CsvSink.__exit__ = _signal_first(writers._CsvSink.__exit__)
        io_threads.BackgroundWorker.close = _signal_first(io_threads.BackgroundWorker.close)


if __name__ == "__main__":
    import run

    _install()
    sys.exit(run.main(sys.argv[1:]))
