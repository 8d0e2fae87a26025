"""Bounded background threads: decode ahead of the main loop, and draw/encode/write behind it.

OpenCV's decode, drawing and encode release the GIL, so on a multi-core CPU they overlap with detection.
Queues are bounded (`maxsize` frames), so memory stays flat whatever the video length.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_DONE = object()


def prefetch(items: Iterable[T], maxsize: int) -> Iterator[T]:
    """Iterate `items` in a thread, up to maxsize ahead; errors surface in the consumer."""
    q: queue.Queue = queue.Queue(maxsize=maxsize)
    stop = threading.Event()
    error: list[BaseException] = []

    def run() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as exc:  # handed to the consumer below, not swallowed
            error.append(exc)
        finally:
            q.put(_DONE)

    t = threading.Thread(target=run, name="prefetch", daemon=True)
    t.start()
    try:
        while (item := q.get()) is not _DONE:
            yield item
        if error:
            raise error[0]
    finally:
        stop.set()
        while t.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(timeout=0.05)


class BackgroundWorker:
    """Runs `handle(item)` for each submitted item in one thread, in order; close() drains and joins.

    An exception in the worker is re-raised in the caller once: at the next submit() or at close(); items
    still queued behind it are dropped.
    """

    def __init__(self, handle: Callable[[Any], object], maxsize: int) -> None:
        self._handle = handle
        self._q: queue.Queue = queue.Queue(maxsize=maxsize)
        self._error: BaseException | None = None
        self._raised = False  # close() must not raise again what submit() already raised (a self-referencing context)
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._q.get()) is not _DONE:
            if self._error is None:
                try:
                    self._handle(item)
                except BaseException as exc:  # re-raised in the caller
                    self._error = exc

    def submit(self, item: Any) -> None:
        self._raise_error()
        self._q.put(item)

    def close(self) -> None:
        self._q.put(_DONE)
        self._thread.join()
        self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None and not self._raised:
            self._raised = True
            raise self._error

    def __enter__(self) -> BackgroundWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
