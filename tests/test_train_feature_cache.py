"""Training from cached frozen-encoder features: the network's output from cached features equals its output from
the images; the cache is reused while it matches and rebuilt when the encoder or the windows change; a cached run
learns, resumes exactly, and draws fresh detector landmarks every step; wrong settings are refused by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core_model.data.synth import generate_dataset
from core_model.data.windows import collate_windows
from core_model.handmodel.registry import load_hand_model
from core_model.network.config import STCNetConfig
from core_model.network.stcnet import STCNet
from core_model.train import train
from core_model.training.config import TrainConfig
from core_model.training.datasets import SeededWindows, build_windows
from core_model.training.feature_cache import CachedWindows, collate_cached, load_or_build
from core_model.training.logbook import read_log
from core_model.training.state import LAST, read_training_state

TINY = {"input_size": 64, "frames": 4, "batch_size": 2, "workers": 0, "hand_model": "openhand",
        "imagenet_weights": None, "log_every": 1, "preset": "lite-landmarks", "freeze_stride": 32}


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cache_synth")
    generate_dataset(root, 2, 12, 96, seed=23, split="train", hand_model="openhand")
    return root


@pytest.fixture(scope="module")
def openhand():
    return load_hand_model("openhand")


def _model(openhand) -> STCNet:
    torch.manual_seed(0)
    config = STCNetConfig.from_preset("lite-landmarks", input_size=64, frames=4)
    return STCNet(config, openhand, imagenet_weights=None).eval()


def test_output_from_cached_features_equals_output_from_images(synth_root, openhand, tmp_path):
    model = _model(openhand)
    dataset = build_windows([str(synth_root)], openhand, window=4, crop_size=64)
    f1, g2 = load_or_build(tmp_path / "features.pt", model.encoder, dataset, torch.device("cpu"))
    assert f1.shape == (len(dataset), 4, 320, 2, 2) and f1.dtype == torch.float16
    assert g2.shape == (len(dataset), 4, 112)
    cached = CachedWindows(dataset, f1, g2)
    items = [0, len(dataset) - 1]
    window, features = collate_cached([cached[i] for i in items])
    reference = collate_windows([dataset[i] for i in items])
    assert window.images.shape == reference.images.shape and window.images.stride()[-1] == 0  # a placeholder
    torch.testing.assert_close(window.keypoints3d, reference.keypoints3d)
    with torch.no_grad():
        from_images = model(reference.images, landmarks=reference.landmarks)
        from_cache = model(None, landmarks=reference.landmarks, features=features)
    # fp16 features: the same hands to a fraction of a millimetre.
    assert (from_cache.vertices - from_images.vertices).abs().max() < 5e-4
    torch.testing.assert_close(from_cache.chirality_maps, from_images.chirality_maps, atol=2e-3, rtol=0)
    with pytest.raises(ValueError, match="exactly one"):
        model(reference.images, landmarks=reference.landmarks, features=features)
    with pytest.raises(ValueError, match="features: expected F_1"):
        model(None, landmarks=reference.landmarks, features=(features[0][..., :1], features[1]))


def test_cache_is_reused_and_rebuilt_when_stale(synth_root, openhand, tmp_path, caplog):
    model = _model(openhand)
    path = tmp_path / "features.pt"
    dataset = build_windows([str(synth_root)], openhand, window=4, crop_size=64)
    first = load_or_build(path, model.encoder, dataset, torch.device("cpu"))
    stamp = path.stat().st_mtime_ns
    again = load_or_build(path, model.encoder, dataset, torch.device("cpu"))
    assert path.stat().st_mtime_ns == stamp and torch.equal(first[0], again[0])
    # Other windows (stride 2 instead of 4): rebuilt, with one entry per window.
    denser = build_windows([str(synth_root)], openhand, window=4, crop_size=64, stride=2)
    rebuilt = load_or_build(path, model.encoder, denser, torch.device("cpu"))
    assert len(rebuilt[0]) == len(denser) > len(dataset)
    # Another encoder (weights changed): rebuilt.
    with torch.no_grad():
        next(model.encoder.parameters()).add_(0.5)
    caplog.clear()
    load_or_build(path, model.encoder, denser, torch.device("cpu"))
    assert "rebuilding" in caplog.text
    caplog.clear()
    load_or_build(path, model.encoder, denser, torch.device("cpu"))
    assert "rebuilding" not in caplog.text
    path.write_bytes(b"not a cache")
    with pytest.raises(Exception, match=r"(?i)cache|pickle|zip|load"):
        load_or_build(path, model.encoder, denser, torch.device("cpu"))


def test_landmarks_are_drawn_afresh_per_step(synth_root, openhand, tmp_path):
    model = _model(openhand)
    dataset = build_windows([str(synth_root)], openhand, window=4, crop_size=64)
    seeded = SeededWindows(CachedWindows(dataset, *load_or_build(tmp_path / "f.pt", model.encoder, dataset,
                                                                  torch.device("cpu"))), seed=0)
    a, b, a_again = seeded[(0, 1)]["landmarks"], seeded[(1, 1)]["landmarks"], seeded[(0, 1)]["landmarks"]
    assert torch.equal(a, a_again)             # a function of (seed, epoch, item): resumable
    assert not torch.equal(a, b)               # another epoch, other detections


def test_cached_run_learns_and_resumes_exactly(synth_root, tmp_path):
    cache = tmp_path / "features.pt"

    def config(out: str, steps: int = 30, **changes) -> TrainConfig:
        return TrainConfig(data=(str(synth_root),), out=str(tmp_path / out), steps=steps, feature_cache=str(cache),
                           **{**TINY, **changes})

    result = train(config("run", checkpoint_every=10))
    assert (result.status, result.step) == ("finished", 30) and cache.is_file()
    records = read_log(tmp_path / "run")
    losses = np.array([r["train"]["total"] for r in records])
    assert losses[-5:].mean() < 0.7 * losses[:5].mean(), losses

    whole = train(config("whole", steps=6, checkpoint_every=2, keep_every=2))
    resumed = train(config("resumed", steps=6, checkpoint_every=2), resume=tmp_path / "whole" / "step_00000002.pt")
    assert (whole.step, resumed.step) == (6, 6)
    reference = read_training_state(tmp_path / "whole" / LAST)
    assert read_training_state(tmp_path / "resumed" / LAST).progress.step == reference.progress.step
    from core_model.network.checkpoint import read_checkpoint

    mine = read_checkpoint(tmp_path / "resumed" / LAST).state_dict
    for name, value in read_checkpoint(tmp_path / "whole" / LAST).state_dict.items():
        torch.testing.assert_close(mine[name], value, rtol=1e-4, atol=1e-6, msg=name)


def test_cache_needs_the_whole_encoder_frozen(synth_root, tmp_path):
    with pytest.raises(ValueError, match=r"feature_cache: .*freeze_stride 32"):
        TrainConfig(data=(str(synth_root),), out=str(tmp_path), feature_cache=str(tmp_path / "f.pt"),
                    **{**TINY, "freeze_stride": 8})
