"""The command line's progress bar (core_model.progress): a line per 10 % or per ``log_every`` steps in a log file,
one line redrawn in place per stage on a terminal."""

from __future__ import annotations

import io

from core_model.progress import ProgressBar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_file_gets_a_line_per_tenth_per_stage_and_at_the_end():
    out = io.StringIO()
    bar = ProgressBar(out)
    for done in range(51):
        bar("model", done, 50)
    bar("refine", 1, 2, "chunk")
    lines = out.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == [f"model: {p}%" for p in range(0, 101, 10)] + ["refine: 50%"]
    assert lines[1].startswith("model: 10% (5/50) ") and "s/step" in lines[1] and "left" in lines[1]
    assert lines[-1].startswith("refine: 50% (1/2) chunk ")
    assert bar.stage == "refine"


def test_log_every_steps():
    out = io.StringIO()
    bar = ProgressBar(out, log_every=10)
    for step in range(3, 26):
        bar("train", step, 25, f"loss {step}")
    assert [line.split(" (")[0] + " " + line.split(") ")[1].split(" ")[1]
            for line in out.getvalue().splitlines()] == ["train: 12% 3", "train: 40% 10", "train: 80% 20",
                                                        "train: 100% 25"]


def test_terminal_redraws_one_line_per_stage():
    out = Terminal()
    bar = ProgressBar(out)
    bar("detect", 1, 4)
    bar("detect", 2, 4, "a longer text than before")
    bar("detect", 3, 4)
    assert bar.open
    bar("model", 1, 2)                      # a new stage finishes the unfinished line first
    bar("model", 2, 2)                      # 100 % finishes its own line
    assert not bar.open
    text = out.getvalue()
    assert text.count("\n") == 2 and text.count("\r") == 5
    detect = text.split("\n")[0].split("\r")
    assert detect[3].startswith("detect  [##################       ]  75% 3/4")
    assert len(detect[3]) == len(detect[2])  # padded over the longer line before it
    bar.end()
    assert out.getvalue() == text           # nothing left to finish
