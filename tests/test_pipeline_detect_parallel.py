"""Pass 1 in worker processes (``pipeline/detect_parallel.py``): the segments, sources read from a start, agreement
with the sequential pass on the demo clip, and what happens on a worker's error, a cancel, a truncated file and a
seek that lands elsewhere."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest

from core_model.cancel import CancelledError
from core_model.pipeline import run as run_module
from core_model.pipeline.detect import FrameHands
from core_model.pipeline.detect_parallel import (
    THUMB,
    WARMUP,
    Detections,
    Segment,
    _seeks_agree,
    default_workers,
    detect_in_workers,
    plan_segments,
)
from core_model.pipeline.region import HandRegions
from core_model.pipeline.video import VideoInfo, open_source

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "assets" / "demo" / "demo.mp4"


def write(path: Path, frames: list[np.ndarray], fourcc: str = "MJPG", fps: float = 30.0) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def noise(n: int, size: tuple[int, int] = (96, 128)) -> list[np.ndarray]:
    return [np.random.default_rng(i).integers(0, 255, (*size, 3), np.uint8) for i in range(n)]


def regions(video, workers: int) -> HandRegions:
    items = list(run_module.detect_regions(video, workers=workers))
    assert isinstance(items[-1], HandRegions)
    return items[-1]


@pytest.mark.parametrize(("frames", "workers"), [(1000, 4), (327, 2), (130, 16), (59, 4), (5000, 16), (10, 1)])
def test_segments_cover_every_frame_in_order(frames, workers):
    segments = plan_segments(frames, workers)
    assert segments[0][0] == 0 and segments[-1][1] is None
    assert all(stop == start for (_, stop), (start, _) in itertools.pairwise(segments))
    assert len(segments) == max(1, min(workers, frames // 60))
    if len(segments) > 1:
        sizes = [stop - start for start, stop in segments[:-1]] + [frames - segments[-1][0]]
        work = [sizes[0]] + [s + WARMUP for s in sizes[1:]]  # the first detects no warm-up
        assert max(work) - min(work) <= 1
        assert min(sizes) >= 60 - WARMUP


def test_segment_arguments_and_the_default_worker_count():
    assert plan_segments(500, 1) == [(0, None)]
    with pytest.raises(ValueError, match="workers"):
        plan_segments(500, 0)
    with pytest.raises(ValueError, match="warmup"):
        plan_segments(500, 2, warmup=-1)
    assert default_workers(1) == default_workers(2) == 1
    assert default_workers(16) == 16


def test_sources_read_from_a_start_as_they_stream(tmp_path):
    clip = write(tmp_path / "c.mp4", noise(30), "mp4v")
    folder = tmp_path / "images"
    folder.mkdir()
    for i, frame in enumerate(noise(12)):
        cv2.imwrite(str(folder / f"{i}.png"), frame)
    for path in (clip, folder):
        with open_source(path) as source:
            streamed = dict(source)
            for start, stop in ((17, 25), (3, None), (0, 4), (5, 5)):
                got = list(source.frames(start, stop))
                end = len(streamed) if stop is None else min(stop, len(streamed))
                assert [i for i, _ in got] == list(range(start, end))
                for i, frame in got:
                    np.testing.assert_array_equal(frame, streamed[i])
            with pytest.raises(ValueError, match="start, stop"):
                list(source.frames(4, 2))


def _segment(start: int, head: dict, tail: dict) -> Segment:
    return Segment(start, [], head, tail, None, {})


def test_the_seek_check_refuses_frames_that_differ():
    rng = np.random.default_rng(0)
    thumbs = {i: rng.integers(0, 255, (THUMB, THUMB), np.uint8) for i in range(40, 45)}
    same = _segment(45, thumbs, {})
    before = _segment(0, {}, {i: t.copy() for i, t in thumbs.items()})
    assert _seeks_agree([before, same]) == (True, "")
    nudged = _segment(45, {i: np.clip(t.astype(int) + 2, 0, 255).astype(np.uint8) for i, t in thumbs.items()}, {})
    assert _seeks_agree([before, nudged])[0]  # decoding after a seek may round differently
    shifted = _segment(45, {i: thumbs[min(i + 1, 44)] for i in thumbs}, {})  # one frame off
    agree, why = _seeks_agree([before, shifted])
    assert not agree and "frame 40" in why


def test_workers_agree_with_the_sequential_pass_on_the_demo_clip():
    """Two segments of the 120-frame demo clip (68 and 52 frames, the second warmed up on the 15 before it): the
    first segment's landmarks are those of the sequential pass exactly, the second's within a pixel."""
    assert plan_segments(120, 2) == [(0, 68), (68, None)]
    one, two = regions(DEMO, 1), regions(DEMO, 2)
    assert len(one) == len(two) == 120
    np.testing.assert_array_equal(two.det_keypoints2d[:68], one.det_keypoints2d[:68])
    seen1, seen2 = np.isfinite(one.det_score), np.isfinite(two.det_score)
    assert (seen1 == seen2).mean() >= 0.95
    both = seen1 & seen2
    error = np.linalg.norm(two.det_keypoints2d[both] - one.det_keypoints2d[both], axis=-1).mean(-1)
    assert np.median(error) < 1.0 and (np.isfinite(one.bbox) == np.isfinite(two.bbox)).mean() >= 0.95


def test_a_workers_error_reaches_the_caller(tmp_path):
    missing = tmp_path / "gone.mp4"
    info = VideoInfo(missing, "video", 30.0, 200, 64, 48)
    with pytest.raises(FileNotFoundError, match=r"gone\.mp4"):
        list(detect_in_workers(missing, info, plan_segments(200, 2)))


def test_cancel_stops_the_workers(tmp_path):
    import multiprocessing

    clip = write(tmp_path / "c.avi", noise(200))
    with open_source(clip) as source:
        info = source.info
    with pytest.raises(CancelledError, match="detecting hands"):
        list(detect_in_workers(clip, info, plan_segments(200, 2), cancel=lambda: True))
    assert not multiprocessing.active_children()


def test_a_truncated_video_stops_where_the_sequential_pass_does(tmp_path):
    clip = write(tmp_path / "cut.avi", noise(160))
    data = clip.read_bytes()
    clip.write_bytes(data[: len(data) // 2])
    with open_source(clip) as source:
        info = source.info
    if len(plan_segments(info.frame_count, 2)) < 2:
        pytest.skip(f"OpenCV announces {info.frame_count} frames for the cut file: nothing to split")
    events = {}
    for workers in (1, 2):
        items = list(run_module.detect_regions(clip, workers=workers))
        events[workers] = [e.message for e in items[:-1] if e.message]
        events[f"n{workers}"] = len(items[-1])
    assert events["n1"] == events["n2"] < info.frame_count
    assert events[1] and events[2] and "stopped after frame" in events[2][0]


def test_a_failed_seek_check_detects_in_this_process(tmp_path, monkeypatch):
    def refused(video, info, segments, **kwargs):
        yield 10
        yield None

    clip = write(tmp_path / "c.avi", noise(130))
    monkeypatch.setattr(run_module, "detect_in_workers", refused)
    items = list(run_module.detect_regions(clip, workers=2))
    assert len(items[-1]) == 130 and items[-2].done == 130


def test_detections_pack_and_unpack():
    from core_model.pipeline.detect_parallel import _pack, _unpack

    rng = np.random.default_rng(1)
    hands = [FrameHands(rng.random((k, 21, 2), dtype=np.float32), rng.random(k, dtype=np.float32),
                        rng.random(k, dtype=np.float32)) for k in (0, 2, 1, 0, 2)]
    again = _unpack(*_pack(hands))
    assert [len(h) for h in again] == [0, 2, 1, 0, 2]
    for a, b in zip(hands, again):
        np.testing.assert_array_equal(a.keypoints, b.keypoints)
        np.testing.assert_array_equal(a.score, b.score)
    assert _unpack(*_pack([])) == [] and isinstance(Detections([], None).frames, list)


def test_cli_refuses_no_detection_workers(tmp_path, capsys):
    from core_model.cli import main

    assert main(["run", str(DEMO), "-o", str(tmp_path / "r.npz"), "--detect-workers", "0"]) == 2
    assert "--detect-workers" in capsys.readouterr().err
