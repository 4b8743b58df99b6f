"""Produce the items of an iterable in a background thread, a few ahead of the consumer.

Why a thread: FFmpeg decoding (OpenCV), MediaPipe (called through ctypes) and torch all release the GIL, so
decoding frame i+1 runs on the second core while frame i is being detected or encoded; on two cores that takes
the decoder (5-8 ms a 720p frame) off the critical path. ``depth`` bounds what waits in the queue (two 8K frames
are 200 MB). ``close`` stops and joins the thread: call it (or use ``with``) before closing what the thread
reads from, so a video capture is never released while the thread is inside it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_END = object()


class Prefetch(Generic[T]):
    """``for item in Prefetch(items, depth)``: the same items in the same order; an exception raised by the
    producer is raised in the consumer at the point it happened."""

    def __init__(self, items: Iterable[T], depth: int = 2, name: str = "prefetch") -> None:
        if depth < 1:
            raise ValueError(f"depth: expected at least 1 item ahead, got {depth}")
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(iter(items),), name=name, daemon=True)
        self._thread.start()

    def _put(self, value: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(value, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, iterator: Iterator[T]) -> None:
        try:
            for item in iterator:
                if not self._put((item, None)):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            self._put((_END, exc))
            return
        self._put((_END, None))

    def __iter__(self) -> Iterator[T]:
        while True:
            item, error = self._queue.get()
            if item is _END:
                if error is not None:
                    raise error
                return
            yield item

    def close(self) -> None:
        """Stop the producer and wait for it (it finishes the item it is making)."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        self._thread.join()

    def __enter__(self) -> Prefetch[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
