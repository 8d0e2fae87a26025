"""Run `run.py` in a subprocess with a fault injected at an exact point, so signal tests never race the clock.

Usage: `python -m tests.faults ARGS...` with the fault in the environment:
- FAULT_SIGINT_AT=N: the process sends itself SIGINT while processing frame N (0-based).
- FAULT_SIGINT_ON_CLOSE=1: and a second SIGINT while the video file is being finalised.
"""

from __future__ import annotations

import os
import signal
import sys

from pipeline import processing, writers
from pipeline.types import Detections, Frame


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
        close = writers.VideoSink.__exit__

        def signal_then_close(self: writers.VideoSink, *exc: object) -> None:
            os.kill(os.getpid(), signal.SIGINT)
            close(self, *exc)

        writers.VideoSink.__exit__ = signal_then_close


if __name__ == "__main__":
    import run

    _install()
    sys.exit(run.main(sys.argv[1:]))
