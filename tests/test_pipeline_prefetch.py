"""The background producer that lets decoding overlap detection and the model."""

from __future__ import annotations

import threading
import time

import pytest

from core_model.pipeline.prefetch import Prefetch


def test_same_items_in_order_and_producer_errors_reach_the_consumer():
    with Prefetch(range(100), depth=3) as items:
        assert list(items) == list(range(100))

    def broken():
        yield 1
        yield 2
        raise OSError("disk gone")

    got = []
    with pytest.raises(OSError, match="disk gone"), Prefetch(broken()) as items:
        for item in items:
            got.append(item)
    assert got == [1, 2]
    with pytest.raises(ValueError, match="depth"):
        Prefetch([], depth=0)


def test_close_mid_stream_stops_and_joins_the_producer():
    produced = []

    def slow():
        for i in range(1000):
            produced.append(i)
            time.sleep(0.001)
            yield i

    before = threading.active_count()
    with Prefetch(slow(), depth=2) as items:
        for item in items:
            if item == 5:
                break
    assert threading.active_count() == before
    assert len(produced) <= 5 + 1 + 2 + 1  # at most the queue's depth and the item in hand ahead
