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


def small_stcnet(openhand, frames: int = 4, preset: str = "lite"):
    from core_model.network import STCNet, STCNetConfig

    torch.manual_seed(0)
    model = STCNet(STCNetConfig.from_preset(preset, input_size=64, frames=frames), openhand,
                   imagenet_weights=None).eval()
    if model.landmarks is not None:  # its last layer starts at zero: give the landmarks a visible effect
        for mlp in model.landmarks.sides:
            torch.nn.init.normal_(mlp[-1].weight, std=0.1)
    return model


def random_landmarks(n: int) -> np.ndarray:
    """[n, 2, 21, 3] landmarks in the model's input format, a few hands missing."""
    from core_model.network.landmarks import landmark_input

    uv = torch.rand(n, 2, 21, 2) * 1.6 - 0.8
    uv[::3, 1] = float("nan")
    return landmark_input(uv).numpy()


@pytest.mark.parametrize("preset", ["lite", "lite-landmarks"])
def test_stcnet_encoded_once_per_frame_matches_its_forward(openhand, preset):
    """The encode/head split gives what forward gives; a landmark-guided model takes each frame's landmarks by
    its index in the video."""
    from core_model.pipeline.inference import STCNetWindowModel

    model = small_stcnet(openhand, preset=preset)
    landmarks = random_landmarks(8) if preset == "lite-landmarks" else None
    wm = STCNetWindowModel(model, landmarks)
    crops = torch.rand(2, 4, 3, 64, 64)
    given = None if landmarks is None else torch.from_numpy(landmarks).unflatten(0, (2, 4))
    with torch.inference_mode():
        full = model(crops, landmarks=given).tensors()
        if given is not None:  # the landmarks change the output: the comparison below is not vacuous
            assert (model(crops, landmarks=torch.zeros_like(given)).betas - full["betas"]).abs().max() > 1e-4
        features = {k: v.unflatten(0, (2, 4)) for k, v in wm.encode(crops.flatten(0, 1), range(8)).items()}
        head = wm.head(features)
    finished = wm.finish({k: v.flatten(0, 1).numpy() for k, v in head.items() if k not in
                          ("mhsa_attention", "mhca_attention")})
    for name in ("betas", "rotmats", "global_orient", "hand_pose", "camera", "mhsa_attention", "mhca_attention"):
        np.testing.assert_allclose(head[name].numpy(), full[name].numpy(), atol=1e-5, err_msg=name)
    for name in ("transl", "vertices", "keypoints", "keypoints2d", "chirality_maps"):
        np.testing.assert_allclose(finished[name], full[name].flatten(0, 1).numpy(), atol=1e-5, err_msg=name)


def test_each_frame_is_encoded_once_across_overlapping_windows(openhand):
    from core_model.pipeline.inference import STCNetWindowModel

    wm = STCNetWindowModel(small_stcnet(openhand))
    encoded = []
    original = wm.encode
    wm.encode = lambda crops, frames: encoded.append(len(crops)) or original(crops, frames)
    n = 17
    windows = plan_windows(np.ones(n, bool), 4, 2)
    updates = list(run_windows(wm, crops_for(n, size=64), windows, overlap=2, batch=3, encode_batch=5))
    assert sum(encoded) == n < 4 * len(windows)  # 17 frames, 7 windows of 4 slots
    assert max(encoded) <= 5
    assert sorted(np.concatenate([u.frames for u in updates]).tolist()) == list(range(n))


def test_blended_meshes_are_the_blended_parameters_posed(openhand):
    """Overlapping windows disagree (each frame sees different temporal context; here strongly: each window turns
    its hands about z by up to 0.6 rad depending on the frame's place in it). After blending, vertices and
    keypoints must be what the hand model gives for the blended parameters, not an average of two meshes."""
    import roma

    from core_model.network.decoder import weak_perspective_project
    from core_model.pipeline.inference import STCNetWindowModel, window_weights

    class Disagreeing(STCNetWindowModel):
        def head(self, features):
            out = dict(super().head(features))
            turn = roma.rotvec_to_rotmat(torch.linspace(-0.6, 0.6, self.frames)[:, None] * torch.tensor([0, 0, 1.0]))
            rotmats = out["rotmats"].clone()
            rotmats[:, :, :, 0] = turn[None, :, None] @ rotmats[:, :, :, 0]
            out["rotmats"] = rotmats
            return out

    wm = Disagreeing(small_stcnet(openhand))
    n = 14
    rng = np.random.default_rng(0)
    crops = [(i, rng.integers(0, 255, (64, 64, 3), np.uint8)) for i in range(n)]
    windows = plan_windows(np.ones(n, bool), 4, 2)
    out = collect(list(run_windows(wm, crops, windows, overlap=2, batch=2)))
    with torch.inference_mode():
        posed = openhand(*(torch.from_numpy(out[k]) for k in ("betas", "global_orient", "hand_pose", "transl")))
    np.testing.assert_allclose(out["vertices"], posed.vertices.numpy(), atol=1e-5)
    np.testing.assert_allclose(out["keypoints"], posed.keypoints.numpy(), atol=1e-5)
    np.testing.assert_allclose(out["keypoints"][:, 0, 0], 0, atol=1e-5)  # the right wrist stays the origin
    np.testing.assert_allclose(out["keypoints"][:, 1, 0], out["rel_transl"], atol=1e-5)  # the left at rel_transl
    local = torch.from_numpy(out["keypoints"] - out["keypoints"][:, :, :1])
    np.testing.assert_allclose(out["keypoints2d"], weak_perspective_project(local, torch.from_numpy(out["camera"])),
                               atol=1e-5)
    # What averaging the two windows' own meshes would give on their shared frames is far from that.
    per_window = []
    for w in windows[:2]:
        images = torch.from_numpy(np.stack([crops[f][1] for f in w.frames]))[None].permute(0, 1, 4, 2, 3) / 255
        with torch.inference_mode():
            features = {k: v[None] for k, v in wm.encode(images[0].float(), w.frames).items()}
            head = {k: v[0].numpy() for k, v in wm.head(features).items() if k not in ("mhsa_attention",
                                                                                       "mhca_attention")}
        per_window.append(wm.finish(head)["vertices"])
    weights = window_weights(4, 2)
    shared = windows[1].frames[0] - windows[0].frames[0]  # window 0 slots shared.., window 1 slots ..4-shared
    a, b = per_window[0][shared:], per_window[1][:4 - shared]
    wa, wb = weights[shared:, None, None, None], weights[:4 - shared, None, None, None]
    averaged = (wa * a + wb * b) / (wa + wb)
    frames = windows[0].frames[shared:]
    assert np.abs(averaged - out["vertices"][frames]).max() > 1e-3  # metres: a millimetre and more


def test_landmarks_in_crops_map_the_crop_square_onto_minus_one_to_one():
    from core_model.pipeline.region import crop_frame, landmarks_in_crops

    bbox = np.array([[10.0, 20.0, 100.0, 100.0], [np.nan] * 4])
    keypoints = np.full((2, 2, 21, 2), 60.0)
    keypoints[0, 0, 0] = (10.0, 20.0)      # the crop's top-left corner
    keypoints[0, 0, 1] = (110.0, 120.0)    # its bottom-right corner
    keypoints[0, 1] = np.nan               # a hand the detector missed
    uv = landmarks_in_crops(keypoints, bbox)
    np.testing.assert_allclose(uv[0, 0, 0], [-1, -1])
    np.testing.assert_allclose(uv[0, 0, 1], [1, 1])
    np.testing.assert_allclose(uv[0, 0, 2], [0.0, -0.2])
    assert np.isnan(uv[0, 1]).all() and np.isnan(uv[1]).all()
    # The same point in the crop the pipeline cuts: the pixel whose corner is at (60, 60) lands beside uv (0, -0.2).
    frame = np.zeros((200, 200, 3), np.uint8)
    frame[60, 60] = 255
    crop = crop_frame(frame, bbox[0], 100)
    y, x = np.unravel_index(crop[..., 0].argmax(), crop.shape[:2])
    np.testing.assert_allclose(2 * (np.array([x, y]) + 0.5) / 100 - 1, [0.01, -0.19], atol=1e-6)
