"""Windowed inference with a real (small) torch module: windows, seamless blending, batching, cancel, streaming."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from core_model.pipeline.inference import (
    CancelledError,
    InferenceUpdate,
    plan_windows,
    run_windows,
    window_weights,
)


class TinyWindowNet(nn.Module):
    """Per-frame conv features, mixed over time by a 1D conv when ``temporal``; a rotation about z per frame whose
    angle is the frame's brightness (so blended rotations can be checked) and a window-level attention map."""

    def __init__(self, size: int = 16, frames: int = 6, temporal: bool = False) -> None:
        super().__init__()
        self.input_size, self.frames = size, frames
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.mix = nn.Conv1d(4, 4, 3, padding=1) if temporal else None
        self.position = nn.Parameter(torch.linspace(0, 1, frames)) if temporal else None

    def __call__(self, crops: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.forward(crops)

    def forward(self, crops: torch.Tensor) -> dict[str, torch.Tensor]:
        b, t = crops.shape[:2]
        brightness = crops.mean(dim=(2, 3, 4))                                  # [B, T]
        feats = self.conv(crops.flatten(0, 1)).mean(dim=(2, 3)).unflatten(0, (b, t))  # [B, T, 4]
        value = brightness[..., None].expand(-1, -1, 4)
        if self.mix is not None:
            feats = self.mix(feats.transpose(1, 2)).transpose(1, 2)
            value = value + self.position[None, :, None]
        angle = brightness * 2.0
        cos, sin, zero, one = angle.cos(), angle.sin(), torch.zeros_like(angle), torch.ones_like(angle)
        rot = torch.stack([cos, -sin, zero, sin, cos, zero, zero, zero, one], -1).view(b, t, 1, 1, 3, 3)
        rotmats = rot.expand(b, t, 2, 16, 3, 3)
        return {"value": value + 0 * feats, "rotmats": rotmats, "global_orient": torch.zeros(b, t, 2, 3),
                "hand_pose": torch.zeros(b, t, 2, 45),
                "mhsa_attention": torch.softmax(torch.randn(b, 2, 1, 2 * t, 2 * t), dim=-1)}


def crops_for(n: int, size: int = 16) -> list[tuple[int, np.ndarray]]:
    return [(i, np.full((size, size, 3), 40 + 3 * i, np.uint8)) for i in range(n)]


def collect(updates: list[InferenceUpdate]) -> dict[str, np.ndarray]:
    frames = np.concatenate([u.frames for u in updates])
    out = {k: np.concatenate([u.outputs[k] for u in updates if len(u.frames)]) for k in updates[0].outputs}
    order = np.argsort(frames)
    return {"frames": frames[order], **{k: v[order] for k, v in out.items()}}


def test_plan_windows_covers_runs_only():
    has = np.array([0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0], bool)
    windows = plan_windows(has, frames=4, overlap=2)
    covered = set(np.concatenate([w.frames for w in windows]).tolist())
    assert covered == set(np.flatnonzero(has).tolist())
    assert windows[-1].frames.tolist() == [14, 15, 15, 15]  # a short run: its last frame repeated
    assert all(len(w.frames) == 4 for w in windows)
    with pytest.raises(ValueError, match="overlap"):
        plan_windows(has, frames=4, overlap=4)
    w = window_weights(6, 2)
    assert w[0] < w[1] < w[2] == 1.0 == w[3] and w[-1] == w[0]


def test_frame_local_model_is_reproduced_exactly_across_windows():
    model = TinyWindowNet()
    windows = plan_windows(np.ones(23, bool), 6, 3)
    result = collect(list(run_windows(model, crops_for(23), windows, overlap=3, batch=2)))
    assert result["frames"].tolist() == list(range(23))
    expected = (40 + 3 * np.arange(23)) / 255.0
    np.testing.assert_allclose(result["value"][:, 0], expected, atol=1e-6)
    # rotations come back as axis-angle about z with the frame's angle
    np.testing.assert_allclose(result["global_orient"][:, 0, 2], 2 * expected, atol=1e-5)
    assert result["hand_pose"].shape == (23, 2, 45)


def test_blending_leaves_no_seam_at_window_borders():
    torch.manual_seed(0)
    model = TinyWindowNet(temporal=True)
    n, length, overlap = 30, 6, 3
    windows = plan_windows(np.ones(n, bool), length, overlap)
    blended = collect(list(run_windows(model, crops_for(n), windows, overlap=overlap, batch=3)))["value"][:, 0]
    # Without blending (each frame from the first window that holds it) the position term jumps at borders.
    hard = np.zeros(n)
    for w in reversed(windows):
        with torch.inference_mode():
            crops = torch.from_numpy(np.stack([crops_for(n)[f][1] for f in w.frames]))[None]
            out = model(crops.permute(0, 1, 4, 2, 3).float() / 255)["value"][0, :, 0].numpy()
        hard[w.frames] = out
    assert np.abs(np.diff(blended, 2)).max() < np.abs(np.diff(hard, 2)).max() / 3


def test_results_stream_out_and_cancel_is_checked_between_batches():
    model = TinyWindowNet()
    n = 40
    windows = plan_windows(np.ones(n, bool), 6, 2)
    pulled = []

    def crops():
        for item in crops_for(n):
            pulled.append(item[0])
            yield item

    stream = run_windows(model, crops(), windows, overlap=2, batch=2)
    first = next(stream)
    assert len(first.frames) and max(pulled) < n - 1  # results before the video is read to the end
    assert first.windows[0][0] == (0, 6) and first.windows[0][1]["mhsa_attention"].shape == (2, 1, 12, 12)
    rest = list(stream)
    frames = np.concatenate([first.frames] + [u.frames for u in rest])
    assert sorted(frames.tolist()) == list(range(n)) and len(set(frames.tolist())) == n
    assert rest[-1].done == rest[-1].total == len(windows)

    calls = []
    with pytest.raises(CancelledError, match="after 2 of"):
        for _ in run_windows(model, crops_for(n), windows, overlap=2, batch=2,
                             cancel=lambda: calls.append(1) or len(calls) > 1):
            pass


def test_bad_inputs_name_the_argument():
    model = TinyWindowNet()
    windows = plan_windows(np.ones(10, bool), 6, 2)
    with pytest.raises(ValueError, match="batch"):
        next(run_windows(model, crops_for(10), windows, overlap=2, batch=0))
    with pytest.raises(ValueError, match="crops: ended"):
        list(run_windows(model, crops_for(5), windows, overlap=2))
    with pytest.raises(ValueError, match=r"crops: frame 0 is \(8, 8, 3\)"):
        list(run_windows(model, crops_for(10, size=8), windows, overlap=2))
