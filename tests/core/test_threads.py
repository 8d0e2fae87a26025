import threading
import time

import pytest

from pipeline.core.threads import BackgroundWorker, prefetch


def test_prefetch_keeps_order_and_bounds_lookahead():
    produced = []

    def items():
        for i in range(50):
            produced.append(i)
            yield i

    seen = []
    for x in prefetch(items(), maxsize=3):
        seen.append(x)
        time.sleep(0.001)
        assert len(produced) - len(seen) <= 3 + 2  # queue bound plus the item in hand
    assert seen == list(range(50))


def test_prefetch_raises_producer_errors_and_stops_on_break():
    def bad():
        yield 1
        raise ValueError("decode failed")

    with pytest.raises(ValueError, match="decode failed"):
        list(prefetch(bad(), 2))
    before = threading.active_count()
    gen = prefetch(iter(range(10**6)), 2)
    assert next(gen) == 0
    gen.close()  # joins the producer thread before returning
    assert threading.active_count() <= before


def test_background_worker_runs_in_order_and_reraises():
    out = []
    with BackgroundWorker(out.append, maxsize=2) as w:
        for i in range(100):
            w.submit(i)
    assert out == list(range(100))

    def fail(x):
        raise OSError("disk full")

    w = BackgroundWorker(fail, maxsize=2)
    w.submit(1)
    with pytest.raises(OSError, match="disk full"):
        w.close()
