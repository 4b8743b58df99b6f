"""Seconds spent per pipeline stage, accumulated by the stages themselves, so that ``benchmarks/pipeline.py``
measures the real run rather than a re-enactment of it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


class StageTimer:
    """Wall-clock seconds and call counts per stage name (``decode``, ``detect``, ``model`` ...)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds
        self.calls[stage] = self.calls.get(stage, 0) + 1

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - start)

    def iterate(self, stage: str, items: Iterable[T]) -> Iterator[T]:
        """``items``, with the time spent producing each one (decoding a frame) charged to ``stage``."""
        iterator = iter(items)
        while True:
            start = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                self.add(stage, time.perf_counter() - start)
                return
            self.add(stage, time.perf_counter() - start)
            yield item


def stage(timer: StageTimer | None, name: str) -> contextlib.AbstractContextManager[None]:
    """``timer(name)`` or, without a timer, a context that does nothing."""
    return timer(name) if timer is not None else contextlib.nullcontext()
