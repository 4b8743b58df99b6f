"""Windowed inference (``core_model.network.windowed``), the one path from frames to hands that ``interhand run``,
the app, ``interhand evaluate`` and training's validation share: windows, blending in parameter space, batching,
cancel, streaming, with small real STCNets."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import roma
import torch

from core_model.cancel import CancelledError
from core_model.network.decoder import weak_perspective_project
from core_model.network.windowed import Frame, InferenceUpdate, plan_windows, run_windows, window_weights


def small_stcnet(openhand, frames: int = 4, preset: str = "lite", **overrides):
    from core_model.network import STCNet, STCNetConfig

    torch.manual_seed(0)
    model = STCNet(STCNetConfig.from_preset(preset, input_size=64, frames=frames, **overrides), openhand,
                   imagenet_weights=None).eval()
    if model.landmarks is not None:  # its last layer starts at zero: give the landmarks a visible effect
        for mlp in model.landmarks.sides:
            torch.nn.init.normal_(mlp[-1].weight, std=0.1)
    return model


def random_landmarks(n: int) -> torch.Tensor:
    """[n, 2, 21, 3] landmarks in the model's input format, a few hands missing."""
    from core_model.network.landmarks import landmark_input

    uv = torch.rand(n, 2, 21, 2) * 1.6 - 0.8
    uv[::3, 1] = float("nan")
    return landmark_input(uv)


def frames_for(n: int, size: int = 64, seed: int = 0, landmarks: torch.Tensor | None = None) -> list[Frame]:
    rng = np.random.default_rng(seed)
    return [Frame(i, rng.integers(0, 255, (size, size, 3), np.uint8), None if landmarks is None else landmarks[i])
            for i in range(n)]


def as_batch(frames: list[Frame], indices) -> torch.Tensor:
    """The frames' crops as one window [1, T, 3, S, S], as ``forward`` takes them."""
    return torch.stack([torch.from_numpy(frames[int(f)].image).permute(2, 0, 1) for f in indices])[None] / 255.0


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


@pytest.mark.parametrize("preset", ["lite", "lite-landmarks"])
def test_one_window_gives_what_forward_gives(openhand, preset):
    """The public steps (encode frames, decode a window, pose the hands) put together by the windowed path give
    ``forward``'s output; a landmark-guided model takes each frame's landmarks."""
    model = small_stcnet(openhand, preset=preset)
    landmarks = random_landmarks(4) if model.config.landmarks else None
    frames = frames_for(4, landmarks=landmarks)
    out = collect(list(run_windows(model, frames, plan_windows(np.ones(4, bool), 4, 2), overlap=2)))
    given = None if landmarks is None else landmarks[None]
    with torch.inference_mode():
        full = model(as_batch(frames, range(4)), landmarks=given).tensors()
        if given is not None:  # the landmarks change the output: the comparison is not vacuous
            assert (model(as_batch(frames, range(4)), landmarks=torch.zeros_like(given)).betas
                    - full["betas"]).abs().max() > 1e-4
    for name in ("betas", "rotmats", "global_orient", "hand_pose", "camera", "transl", "vertices", "keypoints",
                 "keypoints2d", "rel_transl", "chirality_maps"):
        np.testing.assert_allclose(out[name], full[name][0].numpy(), atol=2e-5, err_msg=name)


def test_frame_local_model_is_reproduced_exactly_across_windows(openhand):
    """The Baseline (no temporal encoder) sees one frame at a time: whatever window holds a frame, the blend of
    its windows is that frame's own output."""
    model = small_stcnet(openhand, frames=6, temporal_encoder=False, cross_attention=False)
    n = 23
    frames = frames_for(n)
    out = collect(list(run_windows(model, frames, plan_windows(np.ones(n, bool), 6, 3), overlap=3, batch=2)))
    assert out["frames"].tolist() == list(range(n))
    with torch.inference_mode():
        alone = model(as_batch(frames, range(n)).transpose(0, 1)).tensors()  # n windows of one frame each
    for name in ("betas", "rotmats", "keypoints", "vertices", "keypoints2d"):
        np.testing.assert_allclose(out[name], alone[name][:, 0].numpy(), atol=2e-5, err_msg=name)


def test_results_stream_out_and_cancel_is_checked_between_batches(openhand):
    model = small_stcnet(openhand)
    n = 21
    windows = plan_windows(np.ones(n, bool), 4, 2)
    pulled = []

    def frames():
        for item in frames_for(n):
            pulled.append(item.index)
            yield item

    stream = run_windows(model, frames(), windows, overlap=2, batch=2)
    first = next(stream)
    assert len(first.frames) and max(pulled) < n - 1  # results before the video is read to the end
    heads = model.config.heads
    assert first.windows[0][0] == (0, 4) and first.windows[0][1]["mhsa_attention"].shape == (2, heads, 8, 8)
    rest = list(stream)
    done = np.concatenate([first.frames] + [u.frames for u in rest])
    assert sorted(done.tolist()) == list(range(n)) and len(set(done.tolist())) == n
    assert rest[-1].done == rest[-1].total == len(windows)

    calls = []
    with pytest.raises(CancelledError, match="after 2 of"):
        for _ in run_windows(model, frames_for(n), windows, overlap=2, batch=2,
                             cancel=lambda: calls.append(1) or len(calls) > 1):
            pass


def test_bad_inputs_name_the_argument(openhand):
    model = small_stcnet(openhand)
    windows = plan_windows(np.ones(10, bool), 4, 2)
    with pytest.raises(ValueError, match="batch"):
        next(run_windows(model, frames_for(10), windows, overlap=2, batch=0))
    with pytest.raises(ValueError, match="frames: ended"):
        list(run_windows(model, frames_for(5), windows, overlap=2))
    with pytest.raises(ValueError, match=r"frames: frame 0 is \(8, 8, 3\)"):
        list(run_windows(model, frames_for(10, size=8), windows, overlap=2))
    with pytest.raises(ValueError, match="windows: every window must hold T=4"):
        list(run_windows(model, frames_for(10), plan_windows(np.ones(10, bool), 5, 2), overlap=2))
    guided = small_stcnet(openhand, preset="lite-landmarks")
    with pytest.raises(ValueError, match="landmarks: the 'lite-landmarks' model is landmark-guided"):
        list(run_windows(guided, frames_for(10), windows, overlap=2))


def test_each_frame_is_encoded_once_across_overlapping_windows(openhand):
    model = small_stcnet(openhand)
    encoded = []
    original = model.encode_frames
    model.encode_frames = lambda images: encoded.append(len(images)) or original(images)
    n = 17
    windows = plan_windows(np.ones(n, bool), 4, 2)
    updates = list(run_windows(model, frames_for(n), windows, overlap=2, batch=3, encode_batch=5))
    assert sum(encoded) == n < 4 * len(windows)  # 17 frames, 7 windows of 4 slots
    assert max(encoded) <= 5
    assert sorted(np.concatenate([u.frames for u in updates]).tolist()) == list(range(n))


def disagreeing(model):
    """Overlapping windows disagree, strongly: each window turns its hands about z by up to 0.6 rad depending on
    the frame's place in the window."""
    original = model.decode_window

    def decode_window(features, landmarks=None):
        window = original(features, landmarks)
        T = window.params.rotmats.shape[1]
        turn = roma.rotvec_to_rotmat(torch.linspace(-0.6, 0.6, T)[:, None] * torch.tensor([0, 0, 1.0]))
        rotmats = window.params.rotmats.clone()
        rotmats[:, :, :, 0] = turn[None, :, None] @ rotmats[:, :, :, 0]
        window.params.rotmats = rotmats
        return window

    model.decode_window = decode_window
    return model


def test_blended_meshes_are_the_blended_parameters_posed_without_seams(openhand):
    """After blending, vertices and keypoints are what the hand model gives for the blended parameters, not an
    average of two meshes; and the blend has no seam where a frame passes from one window to the next."""
    model = disagreeing(small_stcnet(openhand))
    n = 14
    frames = frames_for(n)
    windows = plan_windows(np.ones(n, bool), 4, 2)
    out = collect(list(run_windows(model, frames, windows, overlap=2, batch=2)))
    with torch.inference_mode():
        posed = openhand(*(torch.from_numpy(out[k]) for k in ("betas", "global_orient", "hand_pose", "transl")))
    np.testing.assert_allclose(out["vertices"], posed.vertices.numpy(), atol=1e-5)
    np.testing.assert_allclose(out["keypoints"], posed.keypoints.numpy(), atol=1e-5)
    np.testing.assert_allclose(out["keypoints"][:, 0, 0], 0, atol=1e-5)  # the right wrist stays the origin
    np.testing.assert_allclose(out["keypoints"][:, 1, 0], out["rel_transl"], atol=1e-5)  # the left at rel_transl
    local = torch.from_numpy(out["keypoints"] - out["keypoints"][:, :, :1])
    np.testing.assert_allclose(out["keypoints2d"], weak_perspective_project(local, torch.from_numpy(out["camera"])),
                               atol=1e-5)
    # Each frame from the first window that holds it (no blending) jumps back by the turn at every border.
    hard = np.zeros((n, 3, 3), np.float32)
    for w in reversed(windows):
        with torch.inference_mode():
            hard[w.frames] = model(as_batch(frames, w.frames)).rotmats[0, :, 0, 0].numpy()
    blended = out["rotmats"][:, 0, 0]

    def jump(rotations):  # largest rotation between neighbouring frames, radians
        rel = np.einsum("nji,njk->nik", rotations[:-1], rotations[1:])
        return np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1, 1)).max()

    inner = slice(2, n - 2)  # the first and last two frames are in one window only: nothing to blend there
    assert jump(blended[inner]) < 0.6 * jump(hard[inner])
    # What averaging the two windows' own meshes would give on their shared frames is far from the blend.
    per_window = []
    for w in windows[:2]:
        with torch.inference_mode():
            per_window.append(model(as_batch(frames, w.frames)).vertices[0].numpy())
    weights = window_weights(4, 2)
    shared = windows[1].frames[0] - windows[0].frames[0]
    a, b = per_window[0][shared:], per_window[1][:4 - shared]
    wa, wb = weights[shared:, None, None, None], weights[:4 - shared, None, None, None]
    averaged = (wa * a + wb * b) / (wa + wb)
    assert np.abs(averaged - out["vertices"][windows[0].frames[shared:]]).max() > 1e-3  # a millimetre and more


def test_given_relative_translation_places_the_left_hand(openhand):
    """The paper's setting: the left hand placed with a given translation instead of the prediction, on every
    frame; the prediction is still reported."""
    model = small_stcnet(openhand)
    n = 9
    given = torch.randn(n, 3) * 0.1
    frames = [Frame(f.index, f.image, rel_transl=given[f.index]) for f in frames_for(n)]
    out = collect(list(run_windows(model, frames, plan_windows(np.ones(n, bool), 4, 2), overlap=2)))
    np.testing.assert_allclose(out["keypoints"][:, 1, 0] - out["keypoints"][:, 0, 0], given.numpy(), atol=1e-5)
    assert np.abs(out["rel_transl_pred"] - given.numpy()).max() > 1e-3
    mixed = frames[:4] + [Frame(f.index, f.image) for f in frames[4:]]
    with pytest.raises(ValueError, match="rel_transl on every frame or on none"):
        list(run_windows(model, mixed, plan_windows(np.ones(n, bool), 4, 2), overlap=2))


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


@pytest.mark.parametrize("stop_after", [1, 3])
def test_resumed_from_a_state_the_updates_are_identical(openhand, stop_after):
    """A run stopped after a few batches and resumed from the state it was in (features and partial blends of
    the frames later windows still need) yields exactly what an uninterrupted run yields from there: same frames,
    same bits. Two runs of windows with gaps between them, landmarks, batches of two."""
    model = small_stcnet(openhand, preset="lite-landmarks")
    has = np.ones(31, bool)
    has[13:15] = False
    landmarks = random_landmarks(len(has))
    frames = [f for f in frames_for(len(has), landmarks=landmarks) if has[f.index]]
    windows = plan_windows(has, 4, 2)
    whole = list(run_windows(model, frames, windows, overlap=2, batch=2))
    first = run_windows(model, iter(frames), windows, overlap=2, batch=2)
    for _ in range(stop_after):
        update = next(first)
    state = update.state()
    first.close()
    assert state.next_window == update.done
    assert bool(state.sums) == (stop_after == 1)  # after batch 3 the first run of frames is over: nothing pending
    rest = [f for f in frames if f.index > state.last_read]
    resumed = list(run_windows(model, rest, windows, overlap=2, batch=2, resume=state))
    assert len(resumed) == len(whole) - stop_after
    for a, b in zip(whole[stop_after:], resumed):
        assert a.done == b.done and a.frames.tolist() == b.frames.tolist()
        for name in a.outputs:
            assert np.array_equal(a.outputs[name], b.outputs[name], equal_nan=True), name
        for (span_a, maps_a), (span_b, maps_b) in zip(a.windows, b.windows):
            assert span_a == span_b and all(np.array_equal(maps_a[k], maps_b[k]) for k in maps_a)
    with pytest.raises(ValueError, match="resume: window 1 is not where a batch"):
        next(run_windows(model, rest, windows, overlap=2, batch=2,
                         resume=dataclasses.replace(state, next_window=1)))
