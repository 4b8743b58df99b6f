"""What a run writes as it goes: ``log.jsonl`` (one JSON record per logging interval: the training curve, readable
without TensorBoard) and TensorBoard event files under ``tb/``; the progress line on stderr is
:class:`core_model.progress.ProgressBar`.

A resumed run appends to ``log.jsonl``; records of steps it redoes (those after the checkpoint it resumed from)
are superseded: :func:`read_log` keeps, for every step, the record written last.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LOG_NAME = "log.jsonl"
TENSORBOARD_DIR = "tb"
TENSORBOARD_PIN = "tensorboard==2.21.0"


class RunLog:
    """Appends records to ``run_dir/log.jsonl`` and, when ``tensorboard``, scalars to ``run_dir/tb``.

    ``purge_step``: the step a resumed run restarts from; TensorBoard drops its events at and after it.
    """

    def __init__(self, run_dir: Path, tensorboard: bool = True, purge_step: int | None = None) -> None:
        self.path = run_dir / LOG_NAME
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log.warning("TensorBoard events are not written: install the tensorboard package "
                            "(pip install %s); the curve is still in %s", TENSORBOARD_PIN, self.path)
            else:
                self.writer = SummaryWriter(str(run_dir / TENSORBOARD_DIR), purge_step=purge_step)

    def record(self, step: int, group: str, scalars: dict[str, float], **fields: Any) -> None:
        """One record: ``{"step", group: scalars, **fields}``; TensorBoard tags are ``group/name``."""
        entry = {"step": step, **fields, group: scalars}
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
        if self.writer is not None:
            numbers = {k: v for k, v in fields.items() if isinstance(v, int | float) and not isinstance(v, bool)}
            for name, value in {**scalars, **numbers}.items():
                self.writer.add_scalar(f"{group}/{name}", value, step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_log(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of ``run_dir/log.jsonl`` in step order, the last written record winning for each (step, kind)
    of record; a torn last line (the process was killed while writing it) is skipped."""
    path = Path(run_dir) / LOG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"run_dir: no {LOG_NAME} in {run_dir}")
    latest: dict[tuple[int, str], dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        kind = "val" if "val" in entry else "train"
        latest[(int(entry["step"]), kind)] = entry
    return [latest[k] for k in sorted(latest)]


def format_curve(records: list[dict[str, Any]], rows: int = 20) -> str:
    """A plain-text table of the training curve (about ``rows`` rows, evenly spaced, always the last) and the
    validation records."""
    train = [r for r in records if "train" in r]
    val = [r for r in records if "val" in r]
    lines = []
    if train:
        count = min(rows, len(train))
        keep = sorted({round(i * (len(train) - 1) / max(count - 1, 1)) for i in range(count)})
        lines.append(f"{'step':>8} {'epoch':>7} {'lr':>9} {'loss':>10} {'joint err mm':>13} {'s/step':>7}")
        for i in keep:
            r = train[i]
            t = r["train"]
            lines.append(f"{r['step']:>8} {r.get('epoch', math.nan):>7.2f} {r.get('lr', math.nan):>9.2e} "
                         f"{t.get('total', math.nan):>10.3f} {t.get('joint_err_mm', math.nan):>13.1f} "
                         f"{r.get('s_per_step', math.nan):>7.2f}")
    if val:
        names = list(val[-1]["val"])
        lines.append("")
        lines.append(f"{'step':>8} " + " ".join(f"{n:>18}" for n in names))
        for r in val:
            lines.append(f"{r['step']:>8} " + " ".join(f"{r['val'].get(n, math.nan):>18.2f}" for n in names))
    return "\n".join(lines) if lines else "(no records yet)"


def plot_curve(records: list[dict[str, Any]], png: str | Path) -> Path:
    """The training loss and joint error against steps (and validation MPJPE if logged) as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from core_model.fileio import atomic_path

    train = [r for r in records if "train" in r]
    if not train:
        raise ValueError("records: no training records to plot")
    steps = [r["step"] for r in train]
    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax_loss, ax_err = fig.subplots(1, 2)
    ax_loss.plot(steps, [r["train"]["total"] for r in train], label="total (eq. 10 + extras)")
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("training loss")
    ax_loss.grid(alpha=0.3)
    ax_err.plot(steps, [r["train"].get("joint_err_mm", math.nan) for r in train], label="train joint error")
    val = [r for r in records if "val" in r and any(k.startswith("MPJPE") for k in r["val"])]
    if val:
        key = next(k for k in val[-1]["val"] if k.startswith("MPJPE"))
        ax_err.plot([r["step"] for r in val], [r["val"][key] for r in val], "o-", label=f"validation {key}")
    ax_err.set_xlabel("step")
    ax_err.set_ylabel("mm")
    ax_err.grid(alpha=0.3)
    ax_err.legend()
    fig.tight_layout()
    out = Path(png)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, facecolor="white")
    return out
