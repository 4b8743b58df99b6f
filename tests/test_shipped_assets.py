"""The shipped model and the bundled demo: real files in assets/, loaded the way the CLI and the app load them."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from core_model.assets import assets_root
from core_model.handmodel import registry
from core_model.handmodel.layer import HandModel
from core_model.network import CheckpointMismatchError, read_checkpoint
from core_model.pipeline.models import describe_run_model, load_run_model, shipped_checkpoint
from core_model.results import load_result


def test_shipped_model_is_compact_and_loads_with_its_hand_model():
    path = shipped_checkpoint()
    assert path.stat().st_size < 20 * 2**20
    ckpt = read_checkpoint(path)
    assert ckpt.hand_model == "OpenHand" and ckpt.config.preset == "lite-landmarks" and ckpt.config.landmarks
    assert ckpt.extra["trained"]["step"] > 0  # provenance of the training run
    model, preset, digest = load_run_model(None, "auto", torch.device("cpu"))
    assert preset == "lite-landmarks" and len(digest) == 64 and model.hand_model_name == "OpenHand"
    assert describe_run_model(None, "auto") == ("lite-landmarks", "OpenHand")
    x = torch.rand(1, model.config.frames, 3, model.config.input_size, model.config.input_size)
    landmarks = torch.zeros(1, model.config.frames, 2, 21, 3)  # a detector that found nothing
    with torch.no_grad():
        out = model(x, landmarks=landmarks)
    assert torch.isfinite(out.vertices).all()


def test_run_model_arguments_are_checked():
    with pytest.raises(ValueError, match="not both"):
        load_run_model("x.pt", "auto", torch.device("cpu"), untrained="lite")
    with pytest.raises(FileNotFoundError, match="checkpoint: no such file"):
        load_run_model("missing.pt", "auto", torch.device("cpu"))
    assert describe_run_model(None, "openhand", untrained="paper") == ("paper", "OpenHand")


def test_shipped_model_refuses_another_hand_model(monkeypatch):
    # A hand model named MANO (OpenHand's arrays under MANO's name): the shipped checkpoint must refuse it.
    real = registry.load_hand_model("openhand")
    sides = [dataclasses.replace(layer.data, meta={**layer.data.meta, "name": "MANO"}) for layer in real.sides]
    monkeypatch.setattr(registry, "load_hand_model", lambda kind="auto": HandModel(*sides))
    with pytest.raises(CheckpointMismatchError, match="OpenHand"):
        load_run_model(None, "mano", torch.device("cpu"))


def test_demo_video_and_result_agree():
    folder = assets_root() / "demo"
    result = load_result(folder / "demo_result.npz")
    capture = cv2.VideoCapture(str(folder / "demo.mp4"))
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, _ = capture.read()
    capture.release()
    assert ok and frames == result.num_frames >= 90  # a few seconds at 30 fps
    assert result.meta.fps == pytest.approx(30.0)
    assert result.meta.checkpoint_sha256 == load_run_model(None, "auto", torch.device("cpu"))[2]
    n, v = result.num_frames, result.num_vertices
    assert result.gt["vertices"].shape == (n, 2, v, 3) and result.gt["keypoints"].shape == (n, 2, 21, 3)
    # Ground truth in the result's convention: the right wrist at the origin.
    np.testing.assert_allclose(result.gt["keypoints"][:, 0, 0], 0.0, atol=1e-6)
    both = result.valid.all(-1)
    assert both.mean() > 0.6  # both hands on most frames (the grasp hides one hand behind the other at times)
    # Where the detector saw one hand only, the other is not reconstructed: nothing presses into it.
    assert not result.inside[~both].any() and not result.depth[~both].any()
    # Hand-sized hands: the largest keypoint distance within each hand (an adult hand spans 0.15-0.2 m).
    kp = result.keypoints[both]
    extent = np.linalg.norm(kp[:, :, :, None] - kp[:, :, None], axis=-1).max((-1, -2))
    assert 0.08 < np.median(extent) < 0.3
    gt_extent = np.linalg.norm(result.gt["keypoints"][:, :, :, None] - result.gt["keypoints"][:, :, None],
                               axis=-1).max((-1, -2))
    assert 0.1 < np.median(gt_extent) < 0.3
