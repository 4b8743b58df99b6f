"""``interhand batch``: five short clips (three cut from the shipped demo, whose hands MediaPipe finds; one
damaged; one without hands) through a tiny random-weight model, on local processes and on a local Ray cluster;
a rerun skips every finished video. The pieces (inputs, names, sizing, the summary) are tested on their own."""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from core_model.assets import assets_root
from core_model.cli import main
from core_model.pipeline import batch, batch_schedule

GOOD = ("grasp_a", "grasp_b", "grasp_c")


def write_mp4(path: Path, frames: list[np.ndarray], fps: float = 30.0) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Five clips of 12 frames: three pieces of the demo (two hands grasping, at frames where MediaPipe is
    confident of one of them often enough for the jitter), one damaged (an mp4 cut in half: its index is gone),
    one plain grey (no hands)."""
    folder = tmp_path_factory.mktemp("clips")
    capture = cv2.VideoCapture(str(assets_root() / "demo" / "demo.mp4"))
    demo = []
    while len(demo) < 118:
        ok, frame = capture.read()
        assert ok
        demo.append(frame)
    capture.release()
    for start, name in zip((64, 100, 106), GOOD):
        write_mp4(folder / f"{name}.mp4", demo[start:start + 12])
    damaged = write_mp4(folder / "damaged.mp4", demo[:12])
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    write_mp4(folder / "nohands.mp4", [np.full((96, 128, 3), 120, np.uint8)] * 12)
    return folder


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    from core_model.handmodel.registry import load_hand_model
    from core_model.network import STCNet, STCNetConfig
    from core_model.network.checkpoint import save_checkpoint

    model = STCNet(STCNetConfig.from_preset("lite-landmarks", input_size=64, frames=4),
                   load_hand_model("openhand"), imagenet_weights=None)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", model)


def read_summary(path: Path) -> dict[str, dict[str, str]]:
    with open(path) as handle:
        return {Path(row["video"]).stem if not row["video"].startswith("all ") else "all": row
                for row in csv.DictReader(handle)}


def check_summary(out: Path, output: str) -> None:
    rows = read_summary(out / "summary.csv")
    assert set(rows) == {*GOOD, "damaged", "nohands", "all"}
    for name in GOOD:
        row = rows[name]
        assert row["status"] == "ok" and row["error"] == "" and row["reused"] == "False"
        assert int(row["frames"]) == 12 and float(row["two_hands"]) == 1.0
        assert 0 <= float(row["interpenetration"]) <= 1 and float(row["seconds"]) > 0
        assert math.isfinite(float(row["jitter"])) and (out / f"{name}.npz").is_file()
    assert rows["damaged"]["status"] == "failed" and "damaged.mp4" in rows["damaged"]["error"]
    assert rows["damaged"]["result"] == "" and rows["grasp_a"]["result"] == str(out / "grasp_a.npz")
    assert rows["nohands"]["status"] == "failed" and "no hands found" in rows["nohands"]["error"]
    assert not (out / "damaged.npz").exists() and not (out / "nohands.npz").exists()
    overall = rows["all"]
    assert overall["video"] == "all 5 videos" and int(overall["frames"]) == 36
    assert overall["status"] == "3 ok, 2 failed"
    assert "| **all 5 videos** | **36** |" in output and "no hands found" in output
    # nothing half-made: results, the summary and the records only
    assert sorted(p.name for p in out.iterdir()) == sorted([*(f"{n}.npz" for n in GOOD), "summary.csv",
                                                            batch.RECORDS])


def test_batch_of_five_clips_locally_then_a_rerun_skips_them(clips, tiny_checkpoint, tmp_path, capsys):
    from core_model.results import load_result

    out = tmp_path / "out"
    args = ["batch", str(clips), "-o", str(out), "--checkpoint", str(tiny_checkpoint), "--workers", "1",
            "--detectors", "2"]
    assert main(args) == 3  # some videos failed
    captured = capsys.readouterr()
    check_summary(out, captured.out)
    assert "5 videos: 5 to run" in captured.out and "[5/5]" in captured.out
    assert "batch" in captured.err  # the progress bar
    result = load_result(out / "grasp_b.npz")
    assert result.num_frames == 12 and result.meta.source_sha256 == batch.source_sha256(clips / "grasp_b.mp4")
    made = {name: (out / f"{name}.npz").stat().st_mtime_ns for name in GOOD}

    assert main(args) == 3  # a rerun: nothing to do, the same summary
    captured = capsys.readouterr()
    assert "5 videos: 0 to run, 5 done by an earlier run" in captured.out and "running on" not in captured.out
    rows = read_summary(out / "summary.csv")
    assert all(rows[n]["reused"] == "True" for n in (*GOOD, "damaged", "nohands"))
    assert rows["grasp_a"]["status"] == "ok" and rows["nohands"]["status"] == "failed"
    assert {name: (out / f"{name}.npz").stat().st_mtime_ns for name in GOOD} == made

    # Under other settings (here refinement) every video would run again; the records stay as they were.
    settings = batch.BatchSettings(checkpoint=str(tiny_checkpoint))
    again = batch.plan_batch(batch.collect_videos([clips]), out, {**settings.identity(), "refine": {"on": 1}})
    assert len(again.jobs) == 5
    assert len(batch.plan_batch(batch.collect_videos([clips]), out, settings.identity()).jobs) == 0

    # A changed video runs again; the copies of the others (the same bytes elsewhere) are found done.
    grasp = cv2.VideoCapture(str(clips / "grasp_a.mp4"))
    frames = [grasp.read()[1] for _ in range(12)]
    grasp.release()
    edited = tmp_path / "edited"
    edited.mkdir()
    for name in GOOD:
        (edited / f"{name}.mp4").write_bytes((clips / f"{name}.mp4").read_bytes())
    write_mp4(edited / "grasp_a.mp4", frames[::-1])
    changed = ["batch", str(edited), "-o", str(out), "--checkpoint", str(tiny_checkpoint), "--workers", "1",
               "--detectors", "1"]
    assert main(changed) == 0
    assert "3 videos: 1 to run, 2 done by an earlier run" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_batch_of_five_clips_on_a_local_ray_cluster(clips, tiny_checkpoint, tmp_path, capsys):
    """A local Ray cluster of two CPUs, so two Ray workers: a model actor and a detection task at a time."""
    pytest.importorskip("ray")
    from core_model.pipeline.batch_ray import RayBackend

    settings = batch.BatchSettings(checkpoint=str(tiny_checkpoint))
    videos = batch.collect_videos([clips])
    out = tmp_path / "out"
    plan = batch.plan_batch(videos, out, settings.identity())
    backend = RayBackend(settings, num_cpus=2)
    try:
        assert (backend.workers, backend.detectors) == (1, 1)
        assert "local Ray cluster (1 model worker" in backend.describe()
        updates = list(batch_schedule.run_jobs(plan.jobs, backend))
    finally:
        backend.close()
    import ray

    assert not ray.is_initialized()  # the cluster started for the batch is gone
    for update in updates:
        if update.row is not None:
            batch.record_row(plan, update.job, update.row)
    assert updates[-1].videos_done == 5 and updates[-1].frames_done == updates[-1].frames
    batch.write_summary_csv(plan.rows, 1.0, out / batch.SUMMARY)
    check_summary(out, batch.markdown_table(plan.rows, 1.0))
    # The CLI reads the same records: nothing left to do, so Ray is not even started.
    assert main(["batch", str(clips), "-o", str(out), "--checkpoint", str(tiny_checkpoint), "--ray"]) == 3
    assert "5 videos: 0 to run" in capsys.readouterr().out


def test_inputs_folders_patterns_and_lists(tmp_path):
    for name in ("b10.mp4", "b9.mp4", "sub/c.avi", "notes.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("x")
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "0001.png").write_bytes(b"x")
    listing = tmp_path / "list.txt"
    listing.write_text(f"# the test set\nb9.mp4\n\n{frames}\nsub/*.avi\n")
    names = lambda paths: [str(p.relative_to(tmp_path)) for p in paths]  # noqa: E731
    assert names(batch.collect_videos([tmp_path])) == ["b9.mp4", "b10.mp4", "sub/c.avi"]
    assert names(batch.collect_videos([listing, tmp_path / "b9.mp4"])) == ["b9.mp4", "frames", "sub/c.avi"]
    assert names(batch.collect_videos([str(tmp_path / "**" / "*.avi")])) == ["sub/c.avi"]
    with pytest.raises(FileNotFoundError, match="matches no video"):
        batch.collect_videos([str(tmp_path / "*.mkv")])
    with pytest.raises(FileNotFoundError, match="no such file"):
        batch.collect_videos([tmp_path / "absent.mp4"])
    assert batch.result_names([tmp_path / "b9.mp4", tmp_path / "sub" / "b9.mp4", frames])[2] == "frames"
    a, b = batch.result_names([tmp_path / "b9.mp4", tmp_path / "sub" / "b9.mp4"])
    assert a != b and a.startswith("b9-") and b.startswith("b9-")


def test_workers_are_sized_to_the_machine():
    plan, Plan = batch_schedule.plan_workers, batch_schedule.WorkerPlan
    assert plan(None, None, None, None, cores=2, gpus=0) == Plan(("cpu",), 2, 1)
    assert plan(None, None, None, None, cores=16, gpus=0).devices == ("cpu",) * 5
    gpu = plan(None, None, None, None, cores=16, gpus=2)
    assert gpu.devices == ("cuda:0", "cuda:1") and gpu.detectors == 14
    assert plan("cuda:1", 2, 3, None, cores=16, gpus=2) == Plan(("cuda:1",) * 2, 3, 1)
    assert plan("cpu", None, None, 2, cores=16, gpus=2).devices[0] == "cpu"
    with pytest.raises(ValueError, match="--workers"):
        plan(None, 0, None, None, cores=2, gpus=0)
    with pytest.raises(ValueError, match="no GPU"):
        plan("cuda", None, None, None, cores=2, gpus=0)


def test_summary_table_weights_the_overall_row():
    rows = [batch.VideoRow("a.mp4", "a.npz", "ok", 100, 1.0, 0.5, 0.02, 3.0),
            batch.VideoRow("b.mp4", "b.npz", "truncated", 50, 0.5, 0.0, 0.05, 2.0, "decoding stopped"),
            batch.VideoRow("c.mp4", "c.npz", "failed", error="video: c.mp4 | damaged", reused=True)]
    overall = batch.overall_row(rows, 10.0)
    assert overall["frames"] == 150 and overall["two_hands"] == pytest.approx(125 / 150)
    assert overall["interpenetration"] == pytest.approx(0.5 * 100 / 125)
    assert overall["jitter"] == pytest.approx((0.02 * 100 + 0.05 * 50) / 150)
    assert overall["status"] == "1 ok, 1 truncated, 1 failed (1 from an earlier run)"
    table = batch.markdown_table(rows, 10.0)
    assert "| c.mp4 | - | - | - | - | 0.0 | failed (earlier run) | video: c.mp4 \\| damaged |" in table
    assert batch.videos_per_minute(rows, 10.0) == pytest.approx(12.0)
    row = dataclasses.replace(rows[0])
    assert batch.describe_error(ValueError("video: x")) == "video: x"
    assert batch.describe_error(RuntimeError("boom\nline")) == "RuntimeError: boom line"
    assert row.status == "ok"


class _DiedError(Exception):
    """A fake worker death."""


class FakeBackend:
    """The scheduler's side of an engine, in threads: detection fails for ``bad``, the worker dies under
    ``crash`` every time and under ``flaky`` the first time."""

    workers, detectors = 2, 1

    def __init__(self) -> None:
        import threading
        from concurrent.futures import ThreadPoolExecutor

        self.pool = ThreadPoolExecutor(6)
        self.lock = threading.Lock()
        self.load, self.most, self.ahead, self.most_ahead = [0, 0], 0, 0, 0
        self.restarts: list[int | None] = []
        self.tries: dict[str, int] = {}
        self.cancelled = self.closed = False

    def describe(self) -> str:
        return "fake"

    def detect(self, job):
        with self.lock:
            self.ahead += 1
            self.most_ahead = max(self.most_ahead, self.ahead)
        return self.pool.submit(lambda: batch_schedule.Detected([], 0.0, "bad video" if job.name == "bad" else ""))

    def reconstruct(self, worker, job, detected):
        with self.lock:
            self.ahead -= 1
            self.load[worker] += 1
            self.most = max(self.most, self.load[worker])

        def work():
            import time

            time.sleep(0.01)
            with self.lock:
                self.load[worker] -= 1
                self.tries[job.name] = self.tries.get(job.name, 0) + 1
            if job.name == "crash" or (job.name == "flaky" and self.tries[job.name] == 1):
                raise _DiedError("gone")
            return batch.VideoRow(job.video, job.output, "ok", frames=job.frames)

        return self.pool.submit(work)

    def progress(self):
        return []

    def worker_died(self, exc):
        return isinstance(exc, _DiedError)

    def start_error(self, exc):
        return None

    def restart(self, worker):
        self.restarts.append(worker)

    def cancel(self):
        self.cancelled = True

    def close(self):
        self.closed = True
        self.pool.shutdown()


def test_scheduler_retries_a_dead_worker_once_and_bounds_the_work_ahead():
    names = ["a", "bad", "flaky", "b", "crash", "c", "d", "e"]
    jobs = [batch.Job(i, f"{n}.mp4", f"{n}.npz", n, "k", 10) for i, n in enumerate(names)]
    backend = FakeBackend()
    updates = list(batch_schedule.run_jobs(jobs, backend, poll_s=0.01))
    rows = {u.job.name: u.row for u in updates if u.row is not None}
    assert set(rows) == set(names) and backend.closed and not backend.cancelled
    assert rows["bad"].status == "failed" and rows["bad"].error == "bad video"
    assert rows["flaky"].status == "ok" and backend.tries["flaky"] == 2
    assert rows["crash"].status == "failed" and "died while reconstructing this video, twice" in rows["crash"].error
    assert backend.tries["crash"] == 2 and len(backend.restarts) >= 2
    assert backend.most <= 2 and backend.most_ahead <= backend.detectors + backend.workers + 2
    assert updates[-1].videos_done == len(names) and updates[-1].frames_done == 80

    backend = FakeBackend()  # stopped early (Ctrl-C): the work under way is cancelled, the engine closed
    updates = batch_schedule.run_jobs(jobs, backend, poll_s=0.01)
    next(updates)
    updates.close()
    assert backend.cancelled and backend.closed


def test_ray_is_imported_only_for_a_ray_batch():
    import subprocess
    import sys

    code = ("import sys, core_model.cli, core_model.pipeline.batch, core_model.pipeline.batch_ray\n"
            "core_model.cli.build_parser()\n"
            "sys.exit(1 if 'ray' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1]).returncode == 0
