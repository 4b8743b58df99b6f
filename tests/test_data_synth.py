"""The rendered synthetic set: layout, determinism, split seeds, geometry of the annotations, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import binary_dilation, binary_erosion

from core_model.data.camera import project
from core_model.data.capsules import min_separation, segment_distances, separating_push
from core_model.data.pose_prior import POSE_FAMILIES, POSE_LIBRARY, sample_pose, within_limits
from core_model.data.synth import generate_dataset, generate_sequence, sequence_name, sequence_seed

SIZE, FRAMES, SEQUENCES = 96, 12, 2


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, SEQUENCES, FRAMES, SIZE, seed=5, split="train", hand_model="openhand")
    return root


def test_layout_and_shapes(synth_root, openhand):
    index = json.loads((synth_root / "dataset.json").read_text())
    assert index["format"] == "interhand-synth" and index["sequence_names"] == ["seq_000000", "seq_000001"]
    assert index["hand_model"] == openhand.name and index["num_vertices"] == openhand.num_vertices
    directory = synth_root / "seq_000001"
    assert len(list((directory / "rgb").glob("*.jpg"))) == FRAMES
    assert len(list((directory / "labels").glob("*.png"))) == FRAMES
    with Image.open(directory / "rgb" / "000003.jpg") as im:
        assert im.size == (SIZE, SIZE) and im.mode == "RGB"
    ann = np.load(directory / "annotations.npz")
    expected = {"betas": (FRAMES, 2, 10), "global_orient": (FRAMES, 2, 3), "hand_pose": (FRAMES, 2, 45),
                "transl": (FRAMES, 2, 3), "keypoints3d": (FRAMES, 2, 21, 3), "keypoints2d": (FRAMES, 2, 21, 2),
                "visibility": (FRAMES, 2, 21), "boxes": (FRAMES, 2, 4), "K": (3, 3),
                "articulation": (FRAMES, 2, 5, 3, 3)}
    for key, shape in expected.items():
        assert ann[key].shape == shape, key
    assert np.load(directory / "vertices.npy", mmap_mode="r").shape == (FRAMES, 2, openhand.num_vertices, 3)
    meta = json.loads((directory / "meta.json").read_text())
    assert meta["spawn_key"] == [0, 1]


def test_annotations_agree_with_the_hand_model_and_the_images(synth_root, openhand):
    for name in ("seq_000000", "seq_000001"):
        d = synth_root / name
        ann = np.load(d / "annotations.npz")
        with torch.no_grad():
            out = openhand(*(torch.from_numpy(ann[k]) for k in ("betas", "global_orient", "hand_pose", "transl")))
        np.testing.assert_allclose(out.keypoints.numpy(), ann["keypoints3d"], atol=1e-5)
        np.testing.assert_allclose(out.vertices.numpy(), np.load(d / "vertices.npy"), atol=1e-5)
        np.testing.assert_allclose(project(ann["keypoints3d"].astype(np.float64), ann["K"]), ann["keypoints2d"],
                                   atol=1e-3)
        assert within_limits(ann["articulation"])
        assert (ann["keypoints3d"][..., 2] > 0.1).all()  # in front of the camera
        # Keypoints lie in their hand's (amodal) box; visible ones land on their own hand's pixels.
        lo, hi = ann["boxes"][..., None, :2], ann["boxes"][..., None, 2:]
        assert ((ann["keypoints2d"] >= lo - 1) & (ann["keypoints2d"] <= hi + 1)).all()
        vis = ann["visibility"]
        assert vis.any()
        for t in range(FRAMES):
            labels = np.asarray(Image.open(d / "labels" / f"{t:06d}.png"))
            for h in range(2):
                px = np.round(ann["keypoints2d"][t, h][vis[t, h]]).astype(int)
                assert (labels[px[:, 1], px[:, 0]] == h + 1).all()
            # Each hand's mask covers pixels inside its box; the background is there too.
            assert (labels == 0).any()
            # The matte is opaque inside the labelled parts (but for a few slits between fingers that the
            # anti-aliased colour pass resolves and the label pass fills), clear away from them.
            alpha = np.asarray(Image.open(d / "alpha" / f"{t:06d}.png"))
            inner = binary_erosion(labels > 0, iterations=2)
            outer = ~binary_dilation(labels > 0, iterations=2)
            assert (alpha[inner] >= 128).mean() > 0.98 and np.median(alpha[inner]) == 255
            assert (alpha[outer] <= 5).mean() > 0.995
        image = np.asarray(Image.open(d / "rgb" / "000000.jpg")).astype(float)
        assert image.std() > 5  # a textured, lit frame, not a blank one


def test_deterministic_per_seed_and_splits_differ(synth_root, openhand):
    again = generate_sequence(openhand, sequence_seed(5, "train", 0), FRAMES, SIZE)
    ann = np.load(synth_root / sequence_name(0) / "annotations.npz")
    np.testing.assert_array_equal(again.motion.keypoints.astype(np.float32), ann["keypoints3d"])
    np.testing.assert_array_equal(again.visibility, ann["visibility"])
    stored = np.asarray(Image.open(synth_root / sequence_name(0) / "rgb" / "000005.jpg")).astype(float)
    rerender = np.asarray(Image.fromarray(again.images[5]).convert("RGB")).astype(float)
    assert np.abs(stored - rerender).mean() < 3.0  # same render (up to JPEG)
    test = generate_sequence(openhand, sequence_seed(5, "test", 0), 2, SIZE)
    assert not np.allclose(test.motion.keypoints[0], again.motion.keypoints[0])
    assert sequence_seed(5, "train", 0).spawn_key != sequence_seed(5, "test", 0).spawn_key
    with pytest.raises(ValueError, match="split"):
        sequence_seed(5, "val", 0)


def test_pose_prior_stays_inside_limits():
    rng = np.random.default_rng(0)
    for family, names in POSE_FAMILIES.items():
        assert all(n in POSE_LIBRARY for n in names), family
        angles = sample_pose(rng, names, 64)
        assert angles.shape == (64, 5, 3, 3) and within_limits(angles)
    with pytest.raises(ValueError, match="name"):
        sample_pose(rng, ["no-such-pose"])


def test_capsule_distances_and_push():
    p0, p1 = np.array([0.0, 0, 0]), np.array([1.0, 0, 0])
    assert segment_distances(p0, p1, np.array([0.5, 1.0, 0]), np.array([0.5, 2.0, 0])) == pytest.approx(1.0)
    assert segment_distances(p0, p1, np.array([2.0, 0, 0]), np.array([3.0, 0, 0])) == pytest.approx(1.0)
    assert segment_distances(p0, p1, np.array([0.5, -1, 1]), np.array([0.5, 1, 1])) == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    hand = rng.normal(0, 0.03, (1, 21, 3))
    hand[:, 9] = hand[:, 0] + [0.09, 0, 0]
    assert min_separation(hand, hand)[0] < 0
    push = separating_push(hand, hand.copy(), np.array([[0.0, 0, 1]]), np.array([0.002]))
    sep = min_separation(hand, hand + np.array([0, 0, push[0]]))[0]
    assert push[0] > 0 and -0.002 - 1e-4 <= sep <= 0.0


def test_cli_synth_writes_a_set_and_a_preview(tmp_path):
    from core_model.cli import main

    png = tmp_path / "grid.png"
    assert main(["synth", "--out", str(tmp_path / "set"), "--sequences", "1", "--frames", "3", "--size", "64",
                 "--seed", "2", "--split", "test", "--hand-model", "openhand", "--preview", str(png)]) == 0
    index = json.loads((tmp_path / "set" / "dataset.json").read_text())
    assert index["split"] == "test" and index["frames"] == 3
    with Image.open(png) as im:
        assert im.width > 64
    # Other settings into the same folder are refused, naming the argument.
    assert main(["synth", "--out", str(tmp_path / "set"), "--sequences", "1", "--frames", "4", "--size", "64",
                 "--hand-model", "openhand"]) == 2


def test_a_set_restricted_to_some_interactions(tmp_path):
    generate_dataset(tmp_path, 2, 2, 64, seed=2, split="train", hand_model="openhand",
                     interactions=("interlaced", "fist_in_palm"))
    names = [json.loads((tmp_path / sequence_name(i) / "meta.json").read_text())["interaction"] for i in range(2)]
    assert names == ["interlaced", "fist_in_palm"]
    with pytest.raises(ValueError, match="other settings"):
        generate_dataset(tmp_path, 2, 2, 64, seed=2, split="train", hand_model="openhand")
    with pytest.raises(ValueError, match="not among"):
        generate_dataset(tmp_path / "x", 1, 2, 64, seed=2, split="train", interactions=("juggling",))
