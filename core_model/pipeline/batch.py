"""Many videos, one result file each (``interhand batch``): the work of :func:`reconstruct` cut in its two
stages and scheduled over processes, on this machine (``batch_schedule.py``) or on a Ray cluster
(``batch_ray.py``). This module holds what the batch is: its inputs, settings, resume records and summary.

Why two stages: pass 1 (decoding and MediaPipe, on the CPU) and pass 2 (the network, the inside test, the
optional refinement) of one video run one after the other, so a single run leaves a core (or the GPU) idle half
the time. Here detection is a task of its own (``batch_schedule.detect_job``) that runs ahead, in a pool of
processes, on the next videos while the model workers (``batch_schedule.ModelWorker``, the model loaded once per
worker) reconstruct the ones already detected; the regions travel to the worker (``reconstruct(detected=...)``).
The scheduler (``batch_schedule.run_jobs``) keeps every detector and every worker busy and is the same loop for
both engines: processes of the standard library (``batch_schedule.LocalBackend``) or Ray tasks and actors.

Resuming: each video's result is ``OUT_DIR/<name>.npz`` and beside the results a record per video
(``OUT_DIR/.interhand-batch/<name>.json``) keeps the key it was made under: the SHA-256 of the video and the
settings the result depends on (checkpoint hash, preset, hand model, region, refinement, software version). A
rerun skips every video whose record has the same key and whose result is there; a video that failed on its
input (damaged, no hands) is skipped too unless ``retry_failed``; one that failed otherwise (a worker that died,
an error of ours) is tried again.

The summary (:func:`summary_rows`, :func:`write_summary_csv`, :func:`markdown_table`) has one row per video:
frames, the share with both hands reconstructed, the share of those where the hands interpenetrate, the 2D jitter
(``core_model.metrics.jitter_2d`` against MediaPipe's confident landmarks), seconds, status and error message.
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import hashlib
import io
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core_model import __version__
from core_model.fileio import atomic_path
from core_model.metrics import jitter_2d
from core_model.pipeline.video import IMAGE_SUFFIXES, VIDEO_SUFFIXES

log = logging.getLogger(__name__)

RECORDS = ".interhand-batch"
"""Folder of OUT_DIR holding one record per video (its key, its summary row, what its file looked like)."""
SUMMARY = "summary.csv"
MIN_SCORE = 0.8
"""MediaPipe's handedness score above which its landmarks count as the jitter's reference (as in
``benchmarks/real_video.py``)."""
STATUSES = ("ok", "truncated", "failed", "not run")


# ------------------------------------------------------------------------------------------ inputs


def collect_videos(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The sources named by ``inputs``, in order, each once: a video file; a folder (the videos under it, sorted,
    or, when it holds none, the folder itself as one image sequence when it holds images); a glob pattern
    (``data/*.mp4``, ``data/**/*.mp4``); a text file listing any of these, one per line (relative to the list's
    folder; blank lines and lines starting with ``#`` are skipped). FileNotFoundError names an input that
    matches nothing."""
    found: list[Path] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            found.append(path)

    def expand(item: str, base: Path | None, depth: int = 0) -> None:
        path = Path(item) if base is None or Path(item).is_absolute() else base / item
        if path.is_dir():
            videos = sorted((p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES),
                            key=_natural)
            if videos:
                for p in videos:
                    add(p)
            elif any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir() if p.is_file()):
                add(path)
            else:
                raise FileNotFoundError(f"inputs: the folder {path} holds no video and no image")
        elif path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
            add(path)
        elif path.is_file():
            if depth > 0:
                raise ValueError(f"inputs: the list {path} is named inside another list; lists do not nest")
            for line in _list_lines(path):
                expand(line, path.parent, depth + 1)
        elif glob.has_magic(str(path)):
            matches = sorted((Path(p) for p in glob.glob(str(path), recursive=True)), key=_natural)
            matches = [p for p in matches if p.is_dir() or p.suffix.lower() in VIDEO_SUFFIXES]
            if not matches:
                raise FileNotFoundError(f"inputs: the pattern {item} matches no video")
            for p in matches:
                expand(str(p), None, depth)
        else:
            raise FileNotFoundError(f"inputs: no such file or folder {path}")

    for item in inputs:
        expand(str(item), None)
    if not found:
        raise FileNotFoundError("inputs: no video found")
    return found


def _list_lines(path: Path) -> list[str]:
    try:
        text = path.read_text()
    except UnicodeDecodeError as exc:
        raise ValueError(f"inputs: {path} is neither a video (by its name: {', '.join(VIDEO_SUFFIXES)}) nor a text "
                         "file listing videos") from exc
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _natural(path: Path) -> list[object]:
    import re

    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(path))]


def result_names(videos: Sequence[Path]) -> list[str]:
    """A result name per video: its file name without the suffix (a folder: its name); where two videos would
    share one, each of them gets the first 8 hex digits of its full path's hash appended."""
    stems = [v.name if v.is_dir() else v.stem for v in videos]
    counts: dict[str, int] = {}
    for s in stems:
        counts[s] = counts.get(s, 0) + 1
    return [s if counts[s] == 1 else f"{s}-{hashlib.sha256(str(v.resolve()).encode()).hexdigest()[:8]}"
            for s, v in zip(stems, videos)]


def source_sha256(path: Path) -> str:
    """SHA-256 of a video file; of an image folder, of its images' names and contents in order."""
    from core_model.results import file_sha256

    if path.is_file():
        return file_sha256(path)
    digest = hashlib.sha256()
    for image in sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural):
        digest.update(image.name.encode() + b"\0")
        with open(image, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def frame_estimate(path: Path) -> int:
    """The container's frame count (an image folder: its images), for the progress bar; 1 when unreadable."""
    if path.is_dir():
        return max(1, sum(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir()))
    import cv2

    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        return max(1, int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)) if capture.isOpened() else 1
    finally:
        capture.release()


# ------------------------------------------------------------------------------------------ settings, jobs, rows


@dataclasses.dataclass(frozen=True)
class BatchSettings:
    """What every video of a batch is run with (the options of ``interhand run``). checkpoint None with untrained
    None: the shipped model. threads: torch threads of a model worker on the CPU (None: 1, see
    :func:`plan_workers`); batch: windows per network call."""

    checkpoint: str | None = None
    untrained: str | None = None
    hand_model: str = "auto"
    roi: tuple[float, float, float, float] | None = None
    refine: bool = False
    batch: int = 4
    threads: int | None = None

    def identity(self) -> dict[str, Any]:
        """What a result depends on (the settings part of the resume key). The checkpoint is its file's hash;
        device, threads and windows per call change the time, not the result."""
        from core_model.pipeline.models import shipped_checkpoint
        from core_model.results import file_sha256

        checkpoint = "" if self.untrained else file_sha256(self.checkpoint or shipped_checkpoint())
        refine = None
        if self.refine:
            from core_model.refine import RefineConfig

            refine = dataclasses.asdict(RefineConfig())
        return {"checkpoint_sha256": checkpoint, "untrained": self.untrained, "hand_model": self.hand_model,
                "roi": list(self.roi) if self.roi else None, "refine": refine, "software_version": __version__}


@dataclasses.dataclass(frozen=True)
class Job:
    """One video to reconstruct. index: its place in the batch; output: the result file; key: the resume key;
    frames: the container's frame count (the progress bar's estimate)."""

    index: int
    video: str
    output: str
    name: str
    key: str
    frames: int


@dataclasses.dataclass
class VideoRow:
    """One video's line of the summary. status: ok, truncated (a damaged file: the result holds the frames before
    the damage), failed (no result; ``error`` says why) or not run (the batch was interrupted first). two_hands:
    share of frames with both hands reconstructed; interpenetration: share of those where a vertex of one hand
    lies inside the other; jitter: ``jitter_2d`` of the result's 2D keypoints (the refined ones after
    ``--refine``) in hand sizes per frame², on hands MediaPipe saw with a score >= :data:`MIN_SCORE`.
    seconds: detection plus reconstruction of this video. reused: taken from an earlier run's record.
    input_error: the failure lies in the input (a damaged file, no hands), so a rerun would fail again."""

    video: str
    result: str
    status: str
    frames: int = 0
    two_hands: float = math.nan
    interpenetration: float = math.nan
    jitter: float = math.nan
    seconds: float = 0.0
    error: str = ""
    reused: bool = False
    input_error: bool = False


def result_metrics(result) -> dict[str, float | int]:
    """frames, two_hands, interpenetration and jitter of a :class:`Reconstruction` (see :class:`VideoRow`)."""
    refined = bool(result.refined)
    px = np.asarray(result.refined["keypoints2d"] if refined else result.keypoints2d)
    inside = result.refined["inside"] if refined else result.inside
    valid = np.asarray(result.valid, bool)
    both = valid.all(-1)
    interpenetration = float(np.asarray(inside)[both].any(axis=(-1, -2)).mean()) if both.any() else math.nan
    det = np.asarray(result.det_keypoints2d)
    confident = (np.nan_to_num(np.asarray(result.det_score), nan=0.0) >= MIN_SCORE) & np.isfinite(det).all((-1, -2))
    jitter, _ = jitter_2d(px, confident & valid & np.isfinite(px).all((-1, -2)), det)
    return {"frames": int(result.num_frames), "two_hands": float(both.mean()) if len(both) else math.nan,
            "interpenetration": interpenetration, "jitter": jitter}


def describe_error(exc: BaseException) -> str:
    """One line for the summary: the message of our own errors (they name the input), the type with others."""
    text = " ".join(str(exc).split())
    plain = isinstance(exc, (ValueError, OSError)) and text
    return text if plain else f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def is_input_error(exc: BaseException) -> bool:
    """The failure lies in the video (our ValueErrors and file errors name it), not in the machine."""
    return isinstance(exc, (ValueError, OSError)) and not isinstance(exc, (MemoryError, ConnectionError))


# ------------------------------------------------------------------------------------------ resume records


def record_path(out_dir: Path, name: str) -> Path:
    return out_dir / RECORDS / f"{name}.json"


def read_record(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_record(path: Path, record: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1, allow_nan=True))


@dataclasses.dataclass
class Plan:
    """A batch after looking at its output folder: the jobs to run and the rows of the videos reused from an
    earlier run (``rows`` holds every video in input order; those of ``jobs`` say ``not run`` until they ran)."""

    jobs: list[Job]
    rows: list[VideoRow]
    records: dict[int, tuple[Path, dict[str, Any]]]


def plan_batch(videos: Sequence[Path], out_dir: Path, identity: dict[str, Any], retry_failed: bool = False,
               hashed: Callable[[int, int], None] | None = None) -> Plan:
    """The resume decision for each video: skip it when its record holds the same key (the video's SHA-256 with
    ``identity``) and its result is there, or it failed on its input and ``retry_failed`` is off. A video whose
    size and modification time are those of its record is not hashed again. ``hashed(i, n)``: progress."""
    names = result_names(videos)
    settings = json.dumps(identity, sort_keys=True)
    jobs, rows, records = [], [], {}
    for index, (video, name) in enumerate(zip(videos, names)):
        output = out_dir / f"{name}.npz"
        path = record_path(out_dir, name)
        record = read_record(path) or {}
        stat = video.stat()
        same_file = (video.is_file() and record.get("video") == str(video.resolve())
                     and record.get("size") == stat.st_size and record.get("mtime_ns") == stat.st_mtime_ns)
        if same_file and record.get("sha256"):  # a folder's time does not change with its images: always hashed
            sha = record["sha256"]
        else:
            sha = source_sha256(video)
        key = hashlib.sha256(f"{sha}\n{settings}".encode()).hexdigest()
        fresh = {"key": key, "video": str(video.resolve()), "sha256": sha, "size": stat.st_size,
                 "mtime_ns": stat.st_mtime_ns, "settings": identity}
        old = record.get("row") if record.get("key") == key else None
        reusable = isinstance(old, dict) and (
            (old.get("status") in ("ok", "truncated") and output.is_file())
            or (old.get("status") == "failed" and old.get("input_error") and not retry_failed))
        if reusable:
            known = {f.name for f in dataclasses.fields(VideoRow)}
            row = VideoRow(**{k: v for k, v in old.items() if k in known})
            row.video, row.result, row.reused = str(video), str(output), True
            rows.append(row)
        else:
            job = Job(index, str(video), str(output), name, key, frame_estimate(video))
            jobs.append(job)
            rows.append(VideoRow(str(video), str(output), "not run"))
            records[index] = (path, fresh)
        if hashed is not None:
            hashed(index + 1, len(videos))
    return Plan(jobs, rows, records)


def record_row(plan: Plan, job: Job, row: VideoRow) -> None:
    """A finished video into the plan's rows and its record on disk (what a rerun reads)."""
    plan.rows[job.index] = row
    path, record = plan.records[job.index]
    write_record(path, {**record, "row": dataclasses.asdict(row), "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})


# ------------------------------------------------------------------------------------------ the summary


COLUMNS = ("video", "frames", "two_hands", "interpenetration", "jitter", "seconds", "status", "error", "reused",
           "result")


def overall_row(rows: Sequence[VideoRow], wall_s: float) -> dict[str, Any]:
    """The batch as one row: frames summed; two_hands weighted by frames, interpenetration by two-hand frames and
    jitter by frames over the videos with a result; seconds: the batch's wall time; status: counts."""
    made = [r for r in rows if r.status in ("ok", "truncated")]
    frames = sum(r.frames for r in made)

    def weighted(values: list[tuple[float, float]]) -> float:
        pairs = [(v, w) for v, w in values if math.isfinite(v) and w > 0]
        return sum(v * w for v, w in pairs) / sum(w for _, w in pairs) if pairs else math.nan

    counts = {s: sum(r.status == s for r in rows) for s in STATUSES}
    status = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    reused = sum(r.reused for r in rows)
    return {"video": f"all {len(rows)} videos", "frames": frames,
            "two_hands": weighted([(r.two_hands, r.frames) for r in made]),
            "interpenetration": weighted([(r.interpenetration, r.frames * r.two_hands) for r in made]),
            "jitter": weighted([(r.jitter, r.frames) for r in made]), "seconds": round(wall_s, 3),
            "status": status + (f" ({reused} from an earlier run)" if reused else ""), "error": "",
            "reused": "", "result": ""}


def summary_rows(rows: Sequence[VideoRow], wall_s: float) -> list[dict[str, Any]]:
    out = [{c: getattr(r, c) if c != "result" or r.status in ("ok", "truncated") else "" for c in COLUMNS}
           for r in rows]
    return [*out, overall_row(rows, wall_s)]


def write_summary_csv(rows: Sequence[VideoRow], wall_s: float, path: Path) -> Path:
    """``summary.csv``: one line per video, then the overall line (numbers plain; NaN where undefined)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in summary_rows(rows, wall_s):
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue())
    return path


def markdown_table(rows: Sequence[VideoRow], wall_s: float) -> str:
    """The summary as a markdown table (the overall line last, in bold)."""

    def pct(v: float) -> str:
        return f"{100 * v:.1f} %" if math.isfinite(v) else "-"

    def num(v: float, digits: int = 4) -> str:
        return f"{v:.{digits}f}" if math.isfinite(v) else "-"

    lines = ["| video | frames | two hands | interpenetration | jitter | time (s) | status | error |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    table = summary_rows(rows, wall_s)
    for i, r in enumerate(table):
        last = i == len(table) - 1
        name = r["video"] if last else Path(r["video"]).name
        status = r["status"] + (" (earlier run)" if r["reused"] is True else "")
        cells = [name, str(r["frames"]) if last or r["status"] in ("ok", "truncated") else "-", pct(r["two_hands"]),
                 pct(r["interpenetration"]), num(r["jitter"]), num(r["seconds"], 1), status,
                 str(r["error"]).replace("|", "\\|")]
        if last:
            cells = [f"**{c}**" if c else c for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def videos_per_minute(rows: Iterable[VideoRow], wall_s: float) -> float:
    count = sum(1 for r in rows if not r.reused and r.status != "not run")
    return 60.0 * count / wall_s if wall_s > 0 else math.nan
