"""``reconstruct(..., refine=...)`` and ``interhand run --refine``: test-time refinement stored beside the network's
result as the ``refined_*`` arrays, chunked over long videos, under the caller's no-grad / inference modes.

The generated clips show no real hands, so the hand detector is replaced by landmarks drawn here (the rest of the
run is real): frames 0-6 without a region, then both hands, the left one missing on frame 10."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from test_pipeline_run import write_clip

from core_model.cli import main
from core_model.pipeline import run as run_module
from core_model.pipeline.region import DETECTED, NONE, HandRegions
from core_model.refine import RefineConfig
from core_model.refine.gating import ABSENT, REASONS
from core_model.results import REFINED_ARRAYS, load_result

N = 14
QUICK = RefineConfig(steps=4, align_steps=2, inter_refresh=(0,))


def fake_hand(cx: float, cy: float) -> np.ndarray:
    """21 landmarks in MediaPipe's order: the wrist, then four joints per finger fanning upwards."""
    points = [(cx, cy + 22)]
    for angle in np.deg2rad([-60, -25, -5, 15, 35]):
        for r in (10, 18, 25, 31):
            points.append((cx + r * np.sin(angle), cy + 22 - r * np.cos(angle)))
    return np.array(points, np.float32)


def fake_regions(n: int = N) -> HandRegions:
    source = np.full((n, 2), DETECTED, np.int8)
    source[:7] = NONE
    source[10, 1] = NONE
    det = np.stack([fake_hand(60, 60), fake_hand(100, 60)])[None].repeat(n, 0)
    det = det + np.linspace(0, 4, n, dtype=np.float32)[:, None, None, None]
    det[source == NONE] = np.nan
    score = np.where(source == DETECTED, 0.9, np.nan).astype(np.float32)
    bbox = np.tile(np.array([25, 5, 110, 110], np.float32), (n, 1))
    bbox[:7] = np.nan
    boxes = np.tile(np.array([[35, 25, 85, 95], [75, 25, 125, 95]], np.float32), (n, 1, 1))
    boxes[source == NONE] = np.nan
    return HandRegions(bbox, boxes, source, det, score, (source == DETECTED).sum(1).astype(np.int8))


@pytest.fixture
def detected(monkeypatch):
    """The detector's pass replaced by :func:`fake_regions`."""
    def detect_regions(video, roi=None, cancel=None, timer=None, witness=None, workers=None):
        yield run_module.RunEvent("detect", N, N)
        yield fake_regions()

    monkeypatch.setattr(run_module, "detect_regions", detect_regions)


@pytest.fixture(scope="module")
def tiny_model(openhand):
    from core_model.network import STCNet, STCNetConfig

    torch.manual_seed(0)
    return STCNet(STCNetConfig.from_preset("lite", input_size=64, frames=4), openhand, imagenet_weights=None).eval()


def test_chunks_cover_every_frame_once_with_context():
    from core_model.pipeline.run import refine_chunks

    assert refine_chunks(14, 100, 16) == [(0, 14, 0, 14)]
    chunks = refine_chunks(14, 5, 1)
    assert chunks == [(0, 5, 0, 6), (5, 10, 4, 11), (10, 14, 9, 14)]
    for n, size, margin in ((1, 1, 0), (1000, 64, 8), (1025, 1024, 16)):
        chunks = refine_chunks(n, size, margin)
        assert np.array_equal(np.concatenate([np.arange(lo, hi) for lo, hi, _, _ in chunks]), np.arange(n))
        assert all(hi - lo <= size and a == max(0, lo - margin) and b == min(n, hi + margin)
                   for lo, hi, a, b in chunks)
    with pytest.raises(ValueError, match="chunk"):
        refine_chunks(10, 0)


def test_reconstruct_with_refine_stores_refined_arrays(tmp_path, detected, tiny_model, monkeypatch):
    from core_model.pipeline.run import reconstruct

    monkeypatch.setattr(run_module, "REFINE_CHUNK", 5)  # three chunks, the first without any region
    monkeypatch.setattr(run_module, "REFINE_MARGIN", 1)
    clip = write_clip(tmp_path / "c.avi", n=N)
    out = tmp_path / "r.npz"
    with torch.inference_mode():  # as the app's worker runs it: refinement turns gradients on for itself
        events = list(reconstruct(clip, out, tiny_model, model_preset="lite", batch=2, refine=QUICK))
    stages = [e.stage for e in events]
    assert stages.index("refine") > max(i for i, s in enumerate(stages) if s == "model") and stages[-1] == "done"
    # Progress in the fit's units (align 2 + Gauss-Newton 4 x 10 + last phases 4, and one for each chunk's arrays),
    # reported as the fit goes: not "0/1" until the end.
    from core_model.refine.fit import GN_STEP_UNITS

    progress = [(e.done, e.total) for e in events if e.stage == "refine"]
    per_chunk = QUICK.align_steps + GN_STEP_UNITS * QUICK.gn_steps + QUICK.steps + 1
    assert {total for _, total in progress} == {3 * per_chunk}
    done = [d for d, _ in progress]
    assert done[0] == 0 and done[-1] == 3 * per_chunk and done == sorted(done)
    assert {per_chunk, 2 * per_chunk} <= set(done)  # each chunk's end; the first one holds no region
    within = [d for d in done if per_chunk < d < 2 * per_chunk]
    assert len(within) >= 3 and QUICK.align_steps + per_chunk in within  # the second chunk's fit, piece by piece

    result = load_result(out)
    assert set(result.refined) == set(REFINED_ARRAYS)
    v = result.num_vertices
    shapes = {"betas": (N, 2, 10), "global_orient": (N, 2, 3), "hand_pose": (N, 2, 45), "transl": (N, 2, 3),
              "keypoints": (N, 2, 21, 3), "vertices": (N, 2, v, 3), "inside": (N, 2, v), "depth": (N, 2, v),
              "keypoints2d": (N, 2, 21, 2), "gate": (N, 2)}
    assert {k: a.shape for k, a in result.refined.items()} == shapes
    assert result.refined["gate"].dtype == np.int8 and result.refined["inside"].dtype == bool

    valid = result.valid
    assert valid[7:].sum() == 2 * 7 - 1 and not valid[:7].any()
    for name in ("keypoints", "vertices", "keypoints2d", "betas", "depth"):
        value = result.refined[name]
        assert np.isfinite(value[valid]).all(), name
        assert np.isnan(value[~valid]).all(), name
    assert (result.refined["gate"][~valid] == ABSENT).all()
    assert set(np.unique(result.refined["gate"][valid])) <= set(range(len(REASONS)))
    moved = np.abs(result.refined["keypoints2d"][valid] - result.keypoints2d[valid]).max()
    assert moved > 0.01  # refinement changed the hands ...
    assert np.isfinite(result.vertices[7:]).all() and np.isnan(result.vertices[:7]).all()  # ... not the network's

    info = result.meta.extra["refine"]
    assert info["config"] == json.loads(json.dumps(dataclasses.asdict(QUICK)))
    assert info["seconds"] > 0 and info["frames"] == 7 and info["chunks"] == 3
    assert info["losses"] and all(len(v) == 2 and np.isfinite(v).all() for v in info["losses"].values())
    assert sum(info["gate"].values()) == valid.sum() and set(info["gate"]) <= set(REASONS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.avi", "r.npz"]  # no parts folder left


def test_cancel_while_the_fit_runs_leaves_nothing(tmp_path, detected, tiny_model):
    """Cancel is looked at between the pieces of a chunk's fit, not only between chunks (one for a short clip)."""
    from core_model.cancel import CancelledError
    from core_model.pipeline.run import reconstruct

    clip = write_clip(tmp_path / "c.avi", n=N)
    seen: list[int] = []
    run = reconstruct(clip, tmp_path / "r.npz", tiny_model, model_preset="lite", batch=4, refine=QUICK,
                      cancel=lambda: bool(seen))
    with pytest.raises(CancelledError, match="while refining"):
        for event in run:
            if event.stage == "refine" and 0 < event.done < event.total:
                seen.append(event.done)  # the alignment is done: cancel now
    assert seen == [QUICK.align_steps]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.avi"]


def test_reconstruct_without_refine_stores_none(tmp_path, detected, tiny_model):
    from core_model.pipeline.run import reconstruct

    clip = write_clip(tmp_path / "c.avi", n=N)
    events = list(reconstruct(clip, tmp_path / "r.npz", tiny_model, model_preset="lite", batch=4))
    assert "refine" not in {e.stage for e in events}
    result = load_result(tmp_path / "r.npz")
    assert result.refined == {} and "refine" not in result.meta.extra


def test_cli_run_refine(tmp_path, detected, tiny_model, capsys, monkeypatch):
    from core_model.network import save_checkpoint

    ckpt = save_checkpoint(tmp_path / "tiny.pt", tiny_model)
    # the CLI refines with the default settings; fewer steps keep the test short
    monkeypatch.setattr("core_model.refine.RefineConfig", lambda: QUICK)
    clip = write_clip(tmp_path / "c.avi", n=N)
    out = tmp_path / "r.npz"
    code = main(["run", str(clip), "-o", str(out), "--checkpoint", str(ckpt), "--hand-model", "openhand",
                 "--refine"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "refined 7 frames" in captured.out and "refine" in captured.err  # summary line, progress bar
    result = load_result(out)
    assert set(result.refined) == set(REFINED_ARRAYS) and result.meta.extra["refine"]["frames"] == 7
    assert np.isfinite(result.refined["vertices"][result.valid]).all()
