"""Windows of the synthetic set: shapes, crops that agree with the 3D, augmentation that keeps everything
consistent (rotation, flip with hands swapped, MANO-layout parameters), batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from core_model.data.camera import project
from core_model.data.synth import generate_dataset
from core_model.data.synthetic import SyntheticWindows
from core_model.data.windows import (
    Augmentation,
    AugmentParams,
    Window,
    WindowDataset,
    collate_windows,
    warp_images,
)

SIZE, FRAMES, T, CROP = 96, 12, 5, 64


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthwin")
    generate_dataset(root, 2, FRAMES, SIZE, seed=11, split="train", hand_model="openhand")
    return root


@pytest.fixture(scope="module")
def dataset(synth_root, openhand):
    return SyntheticWindows(synth_root, openhand, window=T, stride=4, crop_size=CROP)


def _labels_in_crop(synth_root, window: Window, s_name: str) -> np.ndarray:
    """The part-label images warped by the window's crop affines (nearest label by rounding the bilinear mix)."""
    frames = window.frame_index.numpy()
    labels = np.stack([np.asarray(Image.open(synth_root / s_name / "labels" / f"{t:06d}.png")) for t in frames])
    rgb = np.repeat(labels[..., None], 3, axis=-1).astype(np.uint8) * 50
    warped = warp_images(rgb, window.crop_affine.numpy().astype(np.float64), CROP)[:, 0].numpy() * 255
    return np.round(warped / 50).astype(int)


def test_window_fields_and_shapes(dataset, openhand):
    assert len(dataset) == 2 * 3  # starts 0, 4 and the tail 7 of each 12-frame sequence
    item = dataset[0]
    w = Window.from_dict(item)
    V = openhand.num_vertices
    shapes = {"images": (T, 3, CROP, CROP), "keypoints3d": (T, 2, 21, 3), "keypoints2d": (T, 2, 21, 2),
              "joint_valid": (T, 2, 21), "hand_valid": (T, 2), "labelled": (T,), "betas": (T, 2, 10),
              "global_orient": (T, 2, 3), "hand_pose": (T, 2, 45), "transl": (T, 2, 3), "params_valid": (T, 2),
              "vertices": (T, 2, V, 3), "vertices_valid": (T, 2), "root_rel": (T, 3), "crop_box": (T, 4),
              "crop_affine": (T, 3, 3), "K": (T, 3, 3), "K_crop": (T, 3, 3)}
    for key, shape in shapes.items():
        assert tuple(getattr(w, key).shape) == shape, key
    assert w.images.dtype == torch.float32 and 0 <= w.images.min() and w.images.max() <= 1
    assert w.params_valid.all() and w.vertices_valid.all() and w.labelled.all()
    np.testing.assert_allclose(w.root_rel.numpy(), (w.keypoints3d[:, 1, 0] - w.keypoints3d[:, 0, 0]).numpy())
    # Keypoints fit in the crop (margin 1.3 around them) and are the projection of the 3D by K_crop.
    kp = w.keypoints2d.numpy()
    assert (kp > -1).all() and (kp < CROP).all()
    np.testing.assert_allclose(project(w.keypoints3d.numpy().astype(np.float64), w.K_crop.numpy()[:, None, None]),
                               kp, atol=1e-3)
    assert dataset[len(dataset) - 1]["frame_index"].tolist() == list(range(FRAMES - T, FRAMES))


def test_batches_collate(dataset):
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, collate_fn=collate_windows)
    batch = next(iter(loader))
    assert isinstance(batch, Window) and batch.images.shape == (2, T, 3, CROP, CROP)
    plain = next(iter(torch.utils.data.DataLoader(dataset, batch_size=3)))
    assert plain["keypoints3d"].shape == (3, T, 2, 21, 3)


@pytest.mark.parametrize("flip", [False, True])
def test_augmentation_keeps_images_3d_and_parameters_consistent(dataset, synth_root, openhand, flip):
    plain = dataset.build(0, 0, AugmentParams())
    aug = AugmentParams(scale=1.2, rotation_deg=35.0, shift=np.array([0.05, -0.04]), brightness=1.2, flip=flip)
    w = dataset.build(0, 0, aug)
    M = np.diag([-1.0, 1.0, 1.0])
    rot = np.array([[np.cos(np.deg2rad(35)), -np.sin(np.deg2rad(35)), 0], [np.sin(np.deg2rad(35)),
                                                                         np.cos(np.deg2rad(35)), 0], [0, 0, 1]])
    expected = plain.keypoints3d.numpy() @ rot.T
    if flip:
        expected = (expected @ M)[:, ::-1]
    np.testing.assert_allclose(w.keypoints3d.numpy(), expected, atol=1e-5)
    assert bool(w.flipped) is flip
    # 2D = K_crop applied to 3D.
    np.testing.assert_allclose(project(w.keypoints3d.numpy().astype(np.float64), w.K_crop.numpy()[:, None, None]),
                               w.keypoints2d.numpy(), atol=1e-3)
    # The parameters, turned and mirrored, still produce the keypoints and vertices (OpenHand's left is the
    # exact mirror of its right).
    with torch.no_grad():
        out = openhand(w.betas, w.global_orient, w.hand_pose, w.transl)
    np.testing.assert_allclose(out.keypoints.numpy(), w.keypoints3d.numpy(), atol=2e-4)
    np.testing.assert_allclose(out.vertices.numpy(), w.vertices.numpy(), atol=2e-4)
    # The image moved with the keypoints: visible keypoints fall on their own hand in the warped label image
    # (crop_affine includes the flip; after it, hand index 0 shows the left hand's pixels: labels swap).
    labels = _labels_in_crop(synth_root, w, "seq_000000")
    if flip:
        labels = np.where(labels == 1, 2, np.where(labels == 2, 1, labels))
    vis = np.load(synth_root / "seq_000000" / "annotations.npz")["visibility"][:T]
    if flip:
        vis = vis[:, ::-1]
    hits = total = 0
    for t in range(T):
        for h in range(2):
            px = np.round(w.keypoints2d[t, h].numpy()[vis[t, h]]).astype(int)
            ok = (px >= 0).all(1) & (px < CROP).all(1)
            hits += int((labels[t, px[ok, 1], px[ok, 0]] == h + 1).sum())
            total += int(ok.sum())
    assert total > 10 and hits / total > 0.9


def test_random_augmentation_follows_torch_seed(dataset):
    aug_set = Augmentation()
    dataset.augmentation = aug_set
    try:
        torch.manual_seed(3)
        a = dataset[1]
        torch.manual_seed(3)
        b = dataset[1]
        c = dataset[1]
    finally:
        dataset.augmentation = None
    assert torch.equal(a["keypoints2d"], b["keypoints2d"])
    assert not torch.equal(b["keypoints2d"], c["keypoints2d"])


def test_short_sequences_are_padded_and_arguments_checked(synth_root, openhand):
    long = SyntheticWindows(synth_root, openhand, window=FRAMES + 3, crop_size=CROP)
    assert len(long) == 2
    w = Window.from_dict(long[0])
    assert w.labelled.tolist() == [True] * FRAMES + [False] * 3
    assert w.frame_index[-1] == -1 and not w.joint_valid[-1].any() and not w.params_valid[-1].any()
    with pytest.raises(ValueError, match="window"):
        SyntheticWindows(synth_root, openhand, window=0)
    with pytest.raises(FileNotFoundError, match="root"):
        SyntheticWindows(synth_root / "missing", openhand)


def test_landmarks_are_the_simulated_detectors_view_of_the_crop(dataset):
    """Without errors the landmarks are the crop keypoints in normalised coordinates; with the default errors they
    stay near them, are repeatable per window without augmentation, and follow the hands through a flip."""
    from core_model.data.detector_sim import DetectorErrors
    from core_model.network.landmarks import pixels_to_input

    exact = WindowDataset(dataset.sequences, dataset.model, window=T, stride=4, crop_size=CROP,
                          detector=DetectorErrors(0, 0, 0, 0, 0, 0))
    w = exact.build(0, 0, AugmentParams())
    assert w.landmarks.shape == (T, 2, 21, 3)
    torch.testing.assert_close(w.landmarks, pixels_to_input(w.keypoints2d, CROP))
    assert (w.landmarks[..., :2].abs() < 1).all()  # the keypoints lie inside the crop

    noisy = dataset.build(0, 0, AugmentParams())
    assert torch.equal(noisy.landmarks, dataset.build(0, 0, AugmentParams()).landmarks)
    present = noisy.landmarks[..., 2] > 0
    assert 0.5 < present.float().mean() < 1.0
    err = (noisy.landmarks[..., :2] - w.landmarks[..., :2]).norm(dim=-1)[present]
    assert err.median() < 0.05  # the noise is 0.008 of the crop side (0.016 in [-1, 1]), outliers aside

    flipped = exact.build(0, 0, AugmentParams(flip=True))
    expected = w.landmarks.flip(1).clone()
    expected[..., 0] = -expected[..., 0]  # a mirrored crop: u -> -u, and the hands trade places
    torch.testing.assert_close(flipped.landmarks, expected, atol=1e-4, rtol=0)


def test_detector_simulation_failure_modes():
    from core_model.data.detector_sim import DetectorErrors, simulate_detections

    rng = np.random.default_rng(0)
    n = 4000
    kp = np.stack([np.full((n, 21, 2), 10.0), np.full((n, 21, 2), 90.0)], 1)
    visible = np.ones((n, 2, 21), bool)
    visible[:, :, 8] = False  # the index fingertips are occluded
    det, score = simulate_detections(kp, visible, np.full(n, 100.0), rng, DetectorErrors())
    missed = np.isnan(det).all((-1, -2))
    assert 0.04 < missed.mean() < 0.12 and np.isnan(score[missed]).all()
    found = ~missed
    # Palm landmarks are found whenever the hand is; occluded ones are dropped about half the time.
    assert np.isfinite(det[..., [0, 5, 9, 13, 17], :][found]).all()
    assert 0.35 < np.isnan(det[..., 8, 0])[found].mean() < 0.65
    # Swapped or merged frames put a hand's landmarks in the other slot.
    right_at_left = found[:, 0] & (np.abs(det[:, 0, 0, 0] - 90) < 20)
    assert 0.03 < right_at_left.mean() < 0.15
    with pytest.raises(ValueError, match="burst"):
        DetectorErrors(burst=0)
    with pytest.raises(ValueError, match="kp2d"):
        simulate_detections(kp[:, 0], visible, np.full(n, 100.0), rng, DetectorErrors())
