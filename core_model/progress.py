"""A text progress bar for the command line (``interhand run``'s stages, ``interhand train``'s steps)."""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

WIDTH = 25


class ProgressBar:
    """Progress of one stage after another on ``stream`` (stderr by default).

    On a terminal one line per stage, redrawn in place; in a log file a line whenever a stage reaches another
    10 % (or, with ``log_every``, another ``log_every`` steps) and at its end. Each line shows the stage, the
    share done, ``done/total``, the caller's ``text``, the time per step and the time left, measured from the
    stage's first call. ``stage`` holds the current stage's name (callers may set it, e.g. to ``"done"``).
    """

    def __init__(self, stream: TextIO | None = None, log_every: int | None = None) -> None:
        if log_every is not None and log_every < 1:
            raise ValueError(f"log_every: expected a positive number of steps, got {log_every}")
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.log_every = log_every
        self.stage = ""
        self.open = False  # a terminal line is drawn and not finished yet
        self._logged: tuple[str, int | str] | None = None
        self._began = (0.0, 0)  # time and steps done at the stage's first call
        self._width = 0

    def end(self) -> None:
        """Finish an unfinished terminal line so the next message starts on its own line."""
        if self.open:
            self.stream.write("\n")
            self.stream.flush()
            self.open = False
        self._width = 0

    def __call__(self, stage: str, done: int, total: int, text: str = "") -> None:
        if stage != self.stage:
            self.end()  # a stage whose last call did not reach 100 %: its line is finished here
            self.stage = stage
            self._began = (time.perf_counter(), done)
        total = max(total, 1)
        pct = min(100, int(100 * done / total))
        if not self.tty:
            step = "end" if done >= total else done // self.log_every if self.log_every else pct // 10
            if (stage, step) == self._logged:
                return
            self._logged = (stage, step)
        steps = done - self._began[1]
        per_step = (time.perf_counter() - self._began[0]) / steps if steps > 0 else math.nan
        rest = (f" {text}" if text else "") + (f" {_duration(per_step, fraction=True)}/step, "
                                               f"{_duration(per_step * (total - done))} left")
        if self.tty:
            bar = "#" * (WIDTH * min(done, total) // total)
            line = f"{stage:7s} [{bar:{WIDTH}s}] {pct:3d}% {done}/{total}{rest}"
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
            self.open = True
            if done >= total:
                self.end()
        else:
            self.stream.write(f"{stage}: {pct}% ({done}/{total}){rest}\n")
        self.stream.flush()


def _duration(seconds: float, fraction: bool = False) -> str:
    if not math.isfinite(seconds):
        return "?"
    if fraction and seconds < 60:
        return f"{seconds:.2f} s"
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"
