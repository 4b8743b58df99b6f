"""The two-hand perception: shapes, decoding, mirror symmetry, chirality supervision, checkpoints, the shipped
model on committed synthetic frames, the rendered training crops, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core_model.assets import asset_path
from core_model.perception.dataset import SynthPerceptionDataset, heatmap_targets
from core_model.perception.model import (
    CLASSES,
    NUM_KEYPOINTS,
    PerceptionConfig,
    PerceptionNet,
    PerceptionOutput,
    chirality_loss,
    chirality_targets,
    decode,
    flip_output,
    heatmap_peaks,
    load_perception,
    save_perception,
)
from core_model.perception.realism import Realism
from core_model.pipeline.perceive import SHIPPED

FRAMES = Path(__file__).parent / "data" / "perception_synth_frames.npz"
# What the shipped model reaches on the committed frames, with a margin (BENCHMARKS "Two-hand perception").
# Its chirality is the weak part: on 2 of the 5 frames the mirror image swaps the hands the wrong way.
HAND_IOU, KEYPOINT_HITS, MIRROR_AGREE, MIRROR_FRAMES = 0.5, 0.5, 0.5, 0.6


@pytest.fixture(scope="module")
def shipped():
    path = asset_path(*SHIPPED)
    model, meta = load_perception(path)
    return model, meta


@pytest.fixture(scope="module")
def frames():
    with np.load(FRAMES) as data:
        return {k: data[k] for k in data.files}


def test_output_shapes_and_classes():
    torch.manual_seed(0)
    model = PerceptionNet(PerceptionConfig(input_size=96), imagenet_weights=None).eval()
    x = torch.rand(3, 3, 96, 96)
    out = model(x)
    assert out.seg_logits.shape == (3, len(CLASSES), 48, 48)
    assert out.heatmap_logits.shape == (3, 2, NUM_KEYPOINTS, 24, 24)
    assert out.presence_logits.shape == (3, 2)
    pred = decode(out, 96)
    assert pred.keypoints.shape == (3, 2, NUM_KEYPOINTS, 2) and pred.confidence.shape == (3, 2, NUM_KEYPOINTS)
    assert pred.labels.shape == (3, 96, 96) and set(pred.labels.unique().tolist()) <= {0, 1, 2}
    assert torch.allclose(pred.probabilities.sum(1), torch.ones(3, 96, 96), atol=1e-5)
    assert torch.equal(pred.labels, pred.probabilities.argmax(1).to(torch.uint8))
    assert ((pred.presence >= 0) & (pred.presence <= 1)).all()
    with pytest.raises(ValueError, match="input_size"):
        PerceptionConfig(input_size=100)


def test_inference_copy_folds_batch_norms_without_changing_outputs():
    from core_model.perception.model import inference_copy

    torch.manual_seed(1)
    model = PerceptionNet(PerceptionConfig(input_size=64, hand_order="image"), imagenet_weights=None)
    model.train()
    model(torch.rand(4, 3, 64, 64))  # move the batch-norm statistics off their defaults
    model.eval()
    fused = inference_copy(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    x = torch.rand(2, 3, 64, 64)
    a, b = model(x), fused(x.contiguous(memory_format=torch.channels_last))
    for name in ("seg_logits", "heatmap_logits", "presence_logits", "chirality_logits"):
        assert torch.allclose(getattr(a, name), getattr(b, name), atol=1e-4), name


def test_heatmap_peaks_recover_positions_within_a_pixel():
    rng = np.random.default_rng(1)
    kp = rng.uniform(10, 150, (2, 21, 2))
    targets = heatmap_targets(kp, np.ones((2, 21), np.float32), 160)
    found, peak = heatmap_peaks(torch.from_numpy(targets), 4)
    assert np.abs(found.numpy() - kp).max() < 1.0
    assert torch.allclose(peak, torch.ones_like(peak), atol=0.25)


def test_flip_swaps_right_and_left_in_every_output():
    torch.manual_seed(0)
    out = PerceptionOutput(seg_logits=torch.randn(2, 3, 40, 40), heatmap_logits=torch.randn(2, 2, 21, 20, 20) * 3,
                           presence_logits=torch.randn(2, 2))
    a, b = decode(out, 80), decode(flip_output(out), 80)
    mirrored = a.keypoints[:, [1, 0]].clone()
    mirrored[..., 0] = 79 - mirrored[..., 0]
    assert torch.allclose(b.keypoints, mirrored, atol=1e-4)
    assert torch.allclose(b.presence, a.presence[:, [1, 0]])
    swapped = a.labels.flip(-1).clone()
    swapped[a.labels.flip(-1) == 1], swapped[a.labels.flip(-1) == 2] = 2, 1
    assert torch.equal(b.labels, swapped)
    assert torch.equal(flip_output(flip_output(out)).heatmap_logits, out.heatmap_logits)


def test_chirality_targets_and_loss_supervise_stcnet_weight_maps():
    labels = torch.zeros(1, 64, 64, dtype=torch.long)
    labels[0, :32, :32] = 1           # right hand: top-left quarter
    labels[0, 32:, 48:] = 2           # left hand: half of the bottom-right quarter
    labels[0, :8, 56:] = 3            # a forearm: background for the maps
    t = chirality_targets(labels, (2, 2))
    assert t.shape == (1, 2, 2, 2)
    assert torch.allclose(t[0, 0], torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    assert torch.allclose(t[0, 1], torch.tensor([[0.0, 0.0], [0.0, 0.5]]))
    good = chirality_loss(t.clamp(0.01, 0.99), t)
    bad = chirality_loss(t.flip(1).clamp(0.01, 0.99), t)
    assert good < 0.3 < bad


def test_checkpoint_round_trip_and_foreign_files(tmp_path):
    model = PerceptionNet(PerceptionConfig(input_size=64), imagenet_weights=None).eval()
    path = save_perception(model, tmp_path / "p.pt", {"note": "x"}, half=True)
    loaded, meta = load_perception(path)
    assert meta == {"note": "x"} and loaded.config.input_size == 64
    x = torch.rand(1, 3, 64, 64)
    assert torch.allclose(model(x).heatmap_logits, loaded(x).heatmap_logits, atol=0.05)
    from core_model.pipeline.models import shipped_checkpoint

    with pytest.raises(ValueError, match=r"not a perception checkpoint \(interhand-stcnet"):
        load_perception(shipped_checkpoint())  # the reconstruction network's checkpoint
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be read"):
        load_perception(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError):
        load_perception(tmp_path / "missing.pt")


def _any_side_hits(keypoints: torch.Tensor, truth: torch.Tensor, visible: torch.Tensor, share: float) -> torch.Tensor:
    """Per crop: the share of visible keypoints within ``share`` of the hand's size, hands matched either way."""
    size = (truth.amax(2) - truth.amin(2)).amax(-1)[..., None]
    straight = ((keypoints - truth).norm(dim=-1) <= share * size) & visible
    crossed = ((keypoints[:, [1, 0]] - truth).norm(dim=-1) <= share * size) & visible
    return torch.maximum(straight.sum((1, 2)), crossed.sum((1, 2))) / visible.sum((1, 2))


def test_shipped_model_finds_both_hands_on_committed_synthetic_frames(shipped, frames):
    """Rendered test-split crops (interlaced, grasp, palms together, occluding, finger on palm): both hands found,
    their pixels segmented, their keypoints placed. An untrained network scores presence ~0.6, hand IoU ~0.08
    and ~5 % of keypoints here."""
    model, _ = shipped
    x = torch.from_numpy(frames["images"]).permute(0, 3, 1, 2).float() / 255
    pred = model.perceive(x)
    assert (pred.presence > 0.9).all(), pred.presence
    truth = torch.from_numpy(frames["labels"].astype(np.int64)) > 0
    found = pred.labels > 0
    iou = (truth & found).sum((1, 2)).float() / (truth | found).sum((1, 2)).float()
    assert (iou > HAND_IOU).all(), iou
    hits = _any_side_hits(pred.keypoints, torch.from_numpy(frames["keypoints"]), torch.from_numpy(frames["visible"]),
                          0.2)
    assert hits.mean() > KEYPOINT_HITS, hits


def test_shipped_model_mirror_image_swaps_the_hands(shipped, frames):
    """A mirror image of a right hand is a left hand: the mirrored crop's right hand is the original's left."""
    model, _ = shipped
    x = torch.from_numpy(frames["images"]).permute(0, 3, 1, 2).float() / 255
    a, b = model.perceive(x), model.perceive(x.flip(-1))
    mirrored = b.keypoints[:, [1, 0]].clone()
    mirrored[..., 0] = x.shape[-1] - 1 - mirrored[..., 0]
    size = (a.keypoints.amax(2) - a.keypoints.amin(2)).amax(-1)[..., None]
    agree = ((mirrored - a.keypoints).norm(dim=-1) <= 0.2 * size).float().mean((1, 2))
    assert (agree > MIRROR_AGREE).float().mean() >= MIRROR_FRAMES, agree


@pytest.fixture(scope="module")
def tiny_synth(tmp_path_factory):
    from core_model.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("psynth")
    generate_dataset(root, 2, 3, 128, seed=3, split="train", hand_model="openhand")
    return root


@pytest.mark.parametrize("realism", ["all", "renders"])
def test_training_crops_carry_consistent_targets(tiny_synth, realism):
    data = SynthPerceptionDataset(tiny_synth, 96, Realism.parse(realism), train=True, seed=1)
    assert len(data) == 6
    item = data[len(data) + 2]  # the second epoch's draw of item 2
    assert item["image"].shape == (3, 96, 96) and item["image"].dtype == torch.float32
    assert item["labels"].shape == (96, 96) and set(item["labels"].unique().tolist()) <= {0, 1, 2}
    assert item["heatmaps"].shape == (2, 21, 24, 24)
    for h in range(2):
        if item["presence"][h] > 0:
            assert (item["labels"] == h + 1).float().mean() >= 0.004
        # every visible keypoint sits under the heatmap's peak
        for k in np.flatnonzero(item["visible"][h].numpy()):
            pos, peak = heatmap_peaks(item["heatmaps"][h, k], 4)
            assert peak > 0.9 and (pos - item["keypoints"][h, k]).norm() < 1.5
    again = data[len(data) + 2]
    assert torch.equal(again["image"], item["image"])  # deterministic per (seed, epoch, item)
    assert not torch.equal(data[2]["image"], item["image"])  # a fresh draw per epoch


def test_fixed_crops_mirror_consistently_between_label_and_keypoints(tiny_synth):
    data = SynthPerceptionDataset(tiny_synth, 96, train=False)
    item = data[0]
    for h in range(2):
        vis = item["visible"][h]
        if vis.any():
            px = item["keypoints"][h][vis].round().long().clamp(0, 95)
            on_own = item["labels"][px[:, 1], px[:, 0]] == h + 1
            assert on_own.float().mean() > 0.6


def test_realism_parse():
    assert Realism.parse("all") == Realism()
    assert Realism.parse("renders") == Realism.renders()
    assert Realism.parse("all-camera-light") == Realism(light=False, camera=False)
    assert Realism.parse("renders+backgrounds") == Realism.renders().__class__(True, False, False, False, False,
                                                                                False)
    with pytest.raises(ValueError, match="realism"):
        Realism.parse("all-nonsense")


def test_cli_perceive_writes_masks_keypoints_and_overlays(tmp_path, frames):
    import cv2

    from core_model.cli import main

    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        canvas = np.full((240, 320, 3), 90, np.uint8)
        canvas[40:200, 80:240] = frames["images"][i]
        cv2.imwrite(str(folder / f"f{i}.png"), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    out = tmp_path / "out"
    assert main(["perceive", str(folder), "-o", str(out), "--sheet"]) == 0
    data = np.load(out / "perception.npz")
    assert data["keypoints"].shape == (2, 2, 21, 2) and data["crop_labels"].dtype == np.uint8
    assert json.loads(str(data["meta"]))["frames"] == 2
    assert (data["presence"] > 0.5).all()
    kp = data["keypoints"][0]
    assert ((kp[..., 0] > 60) & (kp[..., 0] < 260) & (kp[..., 1] > 20) & (kp[..., 1] < 220)).mean() > 0.9
    overlay = cv2.imread(str(out / "f0.png"))
    assert overlay.shape == (240, 320, 3) and (out / "sheet.png").is_file()
    assert main(["perceive", str(tmp_path / "nothing.mp4"), "-o", str(out)]) == 2
    (tmp_path / "damaged.mp4").write_bytes(b"\x00not a video" * 100)
    assert main(["perceive", str(tmp_path / "damaged.mp4"), "-o", str(tmp_path / "none")]) == 2
    assert not (tmp_path / "none").exists()  # nothing left behind


def test_training_runs_in_resumable_pieces(tiny_synth, tmp_path):
    from core_model.perception.train import EXIT_STOPPED, TrainSettings, train

    settings = TrainSettings(data=[str(tiny_synth)], out=str(tmp_path / "run"), val_data=str(tiny_synth), steps=4,
                             batch=2, input_size=64, workers=0, save_every=1, keep_every=2, val_every=2,
                             val_frames=2, until=3, threads=1)
    assert train(settings) == EXIT_STOPPED
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert state["step"] == 3
    settings.until = 0
    assert train(settings) == 0
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["step"] == 4
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "val" in r] == [2, 4]
    model, meta = load_perception(tmp_path / "run" / "step_000004.pt")
    assert meta["step"] == 4 and model.config.input_size == 64
    settings.batch = 3
    with pytest.raises(ValueError, match="batch=2"):
        train(settings)


def test_image_ordered_heads_decode_to_right_and_left_and_mirror_consistently():
    from core_model.perception.model import slot_sides

    torch.manual_seed(2)
    out = PerceptionOutput(seg_logits=torch.randn(4, 3, 40, 40), heatmap_logits=torch.randn(4, 2, 21, 20, 20) * 3,
                           presence_logits=torch.tensor([[5.0, 5.0], [5.0, 5.0], [5.0, -5.0], [-5.0, 5.0]]),
                           chirality_logits=torch.tensor([[3.0, -3.0], [-2.0, 2.0], [-1.0, 4.0], [-1.0, 4.0]]))
    right_first, certainty = slot_sides(out)
    # slot 0 right in crop 0; slot 1 right in crop 1; crop 2 has only slot 0 (a left hand); crop 3 only slot 1
    assert right_first.tolist() == [True, False, False, False]
    assert (certainty >= 0.5).all() and (certainty <= 1).all()
    pred = decode(out, 80)
    plain = decode(PerceptionOutput(out.seg_logits, out.heatmap_logits, out.presence_logits), 80)
    assert torch.equal(pred.keypoints[0], plain.keypoints[0])
    assert torch.equal(pred.keypoints[1], plain.keypoints[1][[1, 0]])
    mirrored = decode(flip_output(out), 80)
    expect = pred.keypoints[:, [1, 0]].clone()
    expect[..., 0] = 79 - expect[..., 0]
    assert torch.allclose(mirrored.keypoints, expect, atol=1e-4)
    assert torch.allclose(mirrored.presence, pred.presence[:, [1, 0]])


def test_targets_into_image_order():
    from core_model.perception.dataset import image_order
    from core_model.perception.train import to_slots

    kp = np.zeros((2, 21, 2))
    kp[0, :, 0], kp[1, :, 0] = 100, 20          # the right hand lies right of the left hand in the image
    assert image_order(kp, np.array([True, True])).tolist() == [1, 0]
    assert image_order(kp, np.array([True, False])).tolist() == [0, 1]   # present hands first
    labels = torch.tensor([[[0, 1, 2]]])
    batch = {"labels": labels, "heatmaps": torch.arange(2.0).view(1, 2, 1, 1, 1).expand(1, 2, 21, 1, 1),
             "presence": torch.tensor([[1.0, 0.0]]), "order": torch.tensor([[1, 0]])}
    slots = to_slots(batch)
    assert slots["labels"].tolist() == [[[0, 2, 1]]]
    assert slots["heatmaps"][0, :, 0, 0, 0].tolist() == [1.0, 0.0]
    assert slots["presence"].tolist() == [[0.0, 1.0]] and slots["is_right"].tolist() == [[0.0, 1.0]]
