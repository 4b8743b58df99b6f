"""STCNet: shapes for both presets, attention, gradients, overfitting one window, determinism, placement."""

from __future__ import annotations

import numpy as np
import pytest
import roma
import torch

from core_model.handmodel.poses import articulation_to_pose, rest_frames, sample_articulations
from core_model.handmodel.registry import load_hand_model
from core_model.network import ABLATIONS, STCNet, STCNetConfig, STCNetOutput, ablation, weak_perspective_project
from core_model.network.landmarks import LandmarkEmbedding, landmark_input
from core_model.network.temporal import TemporalEncoder

SMALL = 64  # input side for the fast tests: 2x2 and 4x4 feature maps


@pytest.fixture(scope="module")
def hand_model():
    return load_hand_model("auto")


def images(batch: int, frames: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, frames, 3, size, size, generator=torch.Generator().manual_seed(seed))


def small_lite(hand_model, **overrides) -> STCNet:
    torch.manual_seed(0)
    config = STCNetConfig.from_preset("lite", **{"input_size": SMALL, "dropout": 0.0, **overrides})
    return STCNet(config, hand_model, imagenet_weights=None)


def check_shapes(out: STCNetOutput, config: STCNetConfig, batch: int, frames: int, num_vertices: int) -> None:
    h1 = config.input_size // 32
    expected = {
        "betas": (batch, frames, 2, 10), "global_orient": (batch, frames, 2, 3), "hand_pose": (batch, frames, 2, 45),
        "rotmats": (batch, frames, 2, 16, 3, 3), "transl": (batch, frames, 2, 3),
        "vertices": (batch, frames, 2, num_vertices, 3), "keypoints": (batch, frames, 2, 21, 3),
        "joints": (batch, frames, 2, 16, 3), "rel_transl": (batch, frames, 3), "rel_transl_pred": (batch, frames, 3),
        "camera": (batch, frames, 2, 3), "keypoints2d": (batch, frames, 2, 21, 2),
        "chirality_maps": (batch, frames, 2, h1, h1),
        "mhsa_attention": (batch, 2, config.heads, 2 * frames, 2 * frames),
        "mhca_attention": (batch, 2, 2, config.heads, frames, frames),
    }
    got = {name: tuple(t.shape) for name, t in out.tensors().items()}
    assert got == expected
    for name, tensor in out.tensors().items():
        assert torch.isfinite(tensor).all(), name


@pytest.mark.parametrize("frames", [1, 10, 16])
def test_lite_preset_shapes(hand_model, frames):
    config = STCNetConfig.from_preset("lite")
    net = STCNet(config, hand_model).eval()
    with torch.no_grad():
        out = net(images(1, frames, config.input_size))
    check_shapes(out, config, 1, frames, hand_model.num_vertices)
    assert out.hand_model == hand_model.name


def test_paper_preset_at_256_matches_the_paper_sizes(hand_model):
    config = STCNetConfig.from_preset("paper")
    assert (config.encoder, config.input_size, config.frames) == ("resnet50", 256, 10)
    net = STCNet(config, hand_model, imagenet_weights=None).eval()
    x = images(1, 1, 256)
    with torch.no_grad():
        f1, f2 = net.encoder(x[0])
        out = net(x)
    assert tuple(f1.shape) == (1, 2048, 8, 8)   # C1, H1, W1 of section 4.1
    assert tuple(f2.shape) == (1, 1024, 16, 16)  # C2, H2, W2
    check_shapes(out, config, 1, 1, hand_model.num_vertices)


@pytest.mark.parametrize("frames", [10, 16])
def test_paper_preset_over_windows(hand_model, frames):
    # Same widths as the paper preset; a small crop keeps ResNet-50 over 16 frames cheap on 2 cores.
    config = STCNetConfig.from_preset("paper", input_size=SMALL)
    net = STCNet(config, hand_model, imagenet_weights=None).eval()
    with torch.no_grad():
        out = net(images(1, frames, SMALL))
    check_shapes(out, config, 1, frames, hand_model.num_vertices)


def test_attention_rows_sum_to_one(hand_model):
    net = small_lite(hand_model).eval()
    with torch.no_grad():
        out = net(images(2, 10, SMALL))
    for weights in (out.mhsa_attention, out.mhca_attention):
        assert (weights >= 0).all()
        torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]), atol=1e-5, rtol=0)


def test_mhsa_spans_both_hands(hand_model):
    frames = 10
    net = small_lite(hand_model).eval()
    with torch.no_grad():
        out = net(images(1, frames, SMALL))
    # Right-hand queries (rows 0..T-1) put weight on left-hand keys (columns T..2T-1) and the other way round.
    right_to_left = out.mhsa_attention[..., :frames, frames:].sum(-1)
    left_to_right = out.mhsa_attention[..., frames:, :frames].sum(-1)
    assert right_to_left.min() > 0.05 and left_to_right.min() > 0.05

    # And functionally: without MHCA (no shared global input), changing the left sequence changes the right output.
    config = STCNetConfig.from_preset("lite", input_size=SMALL, dropout=0.0, cross_attention=False)
    torch.manual_seed(0)
    encoder = TemporalEncoder(config).eval()
    c1, c2 = config.channels
    g = torch.Generator().manual_seed(3)
    hands, g1, g2 = torch.randn(1, frames, 2, c1, generator=g), torch.randn(1, frames, c1), torch.randn(1, frames, c2)
    changed = hands.clone()
    changed[:, :, 1] += torch.randn(1, frames, c1, generator=g)
    with torch.no_grad():
        before, after = encoder(hands, g1, g2).hands, encoder(changed, g1, g2).hands
    assert (before[:, :, 0] - after[:, :, 0]).abs().max() > 1e-3


def landmarks(batch: int, frames: int, seed: int = 0) -> torch.Tensor:
    """[B, T, 2, 21, 3] random landmarks in the model's input format, the left hand missing on frame 0."""
    uv = torch.rand(batch, frames, 2, 21, 2, generator=torch.Generator().manual_seed(seed)) * 1.6 - 0.8
    uv[:, 0, 1] = float("nan")
    return landmark_input(uv)


@pytest.mark.parametrize("variant", ["full", "baseline", "no-mhca", "resnet18", "landmarks"])
def test_gradient_reaches_every_parameter(hand_model, variant):
    overrides = {"full": {}, "resnet18": {"encoder": "resnet18"}, "landmarks": {"landmarks": True}}.get(variant)
    config_overrides = overrides if overrides is not None else {
        "temporal_encoder": ablation(variant).temporal_encoder, "cross_attention": ablation(variant).cross_attention}
    net = small_lite(hand_model, **config_overrides).train()
    out = net(images(2, 3, SMALL), landmarks=landmarks(2, 3) if variant == "landmarks" else None)
    loss = out.keypoints.square().mean() + out.vertices.square().mean() + out.keypoints2d.square().mean() \
        + out.betas.square().mean() + out.rel_transl_pred.square().mean()
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
        assert p.grad.abs().max() > 0, f"{name} has an all-zero gradient"
    assert not any(True for _ in net.hand_model.parameters())


def two_hand_targets(hand_model, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Keypoints [1, T, 2, 21, 3] in the network's frame (right wrist at the origin) and rel_transl [1, T, 3]."""
    g = torch.Generator().manual_seed(1)
    angles = torch.as_tensor(sample_articulations(np.random.default_rng(0), 2 * frames), dtype=torch.float32)
    hand_pose = torch.stack([articulation_to_pose(angles[:frames], rest_frames(hand_model.right)),
                             articulation_to_pose(angles[frames:], rest_frames(hand_model.left))], dim=1)
    orient = torch.randn(frames, 2, 3, generator=g) * 0.8
    betas = torch.randn(frames, 2, 10, generator=g) * 0.5
    rel = torch.tensor([0.12, 0.02, 0.03]) + 0.01 * torch.randn(frames, 3, generator=g)
    with torch.no_grad():
        posed = hand_model(betas, orient, hand_pose)
    keypoints = posed.keypoints - posed.keypoints[..., :1, :]
    keypoints[:, 1] += rel[:, None, :]
    return keypoints[None], rel[None]


def test_overfits_one_two_hand_window(hand_model):
    frames = 10
    target, _ = two_hand_targets(hand_model, frames)
    torch.manual_seed(0)
    net = STCNet(STCNetConfig.from_preset("lite", input_size=SMALL, dropout=0.0), hand_model).train()
    x = images(1, frames, SMALL, seed=1)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(300):
        loss = ((net(x).keypoints - target) * 100).square().mean()   # keypoint MSE in cm^2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if losses[-1] <= 0.05 * losses[0]:
            break
    assert losses[-1] <= 0.05 * losses[0], f"loss {losses[0]:.3f} -> {losses[-1]:.3f} after {len(losses)} steps"


def test_same_seed_same_output(hand_model):
    x = images(1, 4, SMALL)
    outs = []
    for _ in range(2):
        net = small_lite(hand_model, dropout=0.1).eval()
        with torch.no_grad():
            outs.append(net(x))
    for name, tensor in outs[0].tensors().items():
        assert torch.equal(tensor, outs[1].tensors()[name]), name


def test_placement_translation_and_parameters_agree(hand_model):
    frames = 3
    net = small_lite(hand_model).eval()
    x = images(1, frames, SMALL)
    gt = torch.tensor([0.1, -0.02, 0.05]).expand(1, frames, 3)
    with torch.no_grad():
        predicted = net(x)
        out = net(x, rel_transl=gt)
    torch.testing.assert_close(out.keypoints[:, :, 0, 0], torch.zeros(1, frames, 3), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.keypoints[:, :, 1, 0], gt, atol=1e-6, rtol=0)
    assert torch.equal(out.rel_transl, gt) and torch.equal(out.rel_transl_pred, predicted.rel_transl_pred)
    torch.testing.assert_close(predicted.keypoints[:, :, 1, 0], predicted.rel_transl_pred, atol=1e-6, rtol=0)
    # The returned MANO parameters reproduce the returned meshes through the hand model.
    again = hand_model(out.betas, out.global_orient, out.hand_pose, out.transl)
    torch.testing.assert_close(again.vertices, out.vertices, atol=1e-5, rtol=0)
    # Axis-angle leaves the network; it is the network's rotation matrices.
    torch.testing.assert_close(roma.rotvec_to_rotmat(out.global_orient), out.rotmats[..., 0, :, :], atol=1e-5,
                               rtol=0)
    torch.testing.assert_close(roma.rotvec_to_rotmat(out.hand_pose.unflatten(-1, (15, 3))),
                               out.rotmats[..., 1:, :, :], atol=1e-5, rtol=0)
    # 2D keypoints are each hand's wrist-relative keypoints through its weak-perspective camera.
    local = out.keypoints - out.keypoints[..., :1, :]
    torch.testing.assert_close(out.keypoints2d, weak_perspective_project(local, out.camera))
    assert (out.camera[..., 0] > 0).all()


def test_mixed_precision_keeps_outputs_float32(hand_model):
    net = small_lite(hand_model).eval()
    x = images(1, 3, SMALL)
    with torch.no_grad():
        reference = net(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = net(x)
    assert {t.dtype for t in out.tensors().values()} == {torch.float32}
    # Rotations and the hand model run in float32; only the features before them lose precision.
    assert (out.keypoints - reference.keypoints).abs().max() < 5e-3


def test_forward_validates_its_inputs(hand_model):
    net = small_lite(hand_model).eval()
    with pytest.raises(ValueError, match="images"):
        net(images(1, 2, 96))
    with pytest.raises(ValueError, match="images"):
        net(torch.rand(2, 3, SMALL, SMALL))
    with pytest.raises(ValueError, match="rel_transl"):
        net(images(1, 2, SMALL), rel_transl=torch.zeros(1, 3, 3))
    with pytest.raises(ValueError, match=r"landmarks: .* takes no landmarks"):
        net(images(1, 2, SMALL), landmarks=landmarks(1, 2))
    guided = small_lite(hand_model, landmarks=True).eval()
    with pytest.raises(ValueError, match=r"landmarks: .* needs the detector's landmarks"):
        guided(images(1, 2, SMALL))
    with pytest.raises(ValueError, match="landmarks: expected shape"):
        guided(images(1, 2, SMALL), landmarks=landmarks(1, 3))


def test_landmark_embedding_is_translation_free_and_ignores_missing_landmarks():
    """Moving a hand's landmarks in the crop changes only the palm-centre input, and a missing landmark's
    coordinates (whatever they are) never reach the network."""
    torch.manual_seed(0)
    embed = LandmarkEmbedding(8, 16)
    for mlp in embed.sides:
        torch.nn.init.normal_(mlp[-1].weight)
    uv = torch.rand(1, 2, 21, 2) - 0.5
    uv[0, 0, 20] = float("nan")
    base = landmark_input(uv)
    x = embed(base)
    other = base.clone()
    other[0, 0, 20, :2] = 0.7  # a coordinate behind a presence flag of 0
    assert torch.equal(embed(other), x)
    moved = base.clone()
    moved[0, 1, :, :2] += 0.2 * moved[0, 1, :, 2:]  # the left hand moves
    y = embed(moved)
    assert torch.equal(y[0, 0], x[0, 0]) and not torch.allclose(y[0, 1], x[0, 1])
    # Only the palm centre moved: its input differs by exactly the shift.
    centre = lambda lm: (lm[..., [0, 5, 9, 13, 17], :2] * lm[..., [0, 5, 9, 13, 17], 2:]).sum(-2) / 5  # noqa: E731
    torch.testing.assert_close(centre(moved)[0, 1] - centre(base)[0, 1], torch.tensor([0.2, 0.2]))


def test_config_validation_and_round_trip():
    config = STCNetConfig.from_preset("paper")
    assert STCNetConfig.from_dict(config.to_dict()) == config
    assert config.channels == (2048, 1024) and config.feature_sizes == (8, 16)
    assert STCNetConfig.from_preset("lite").channels == (320, 112)
    assert 128 <= STCNetConfig.from_preset("lite").input_size <= 256
    for overrides, field in [({"encoder": "vgg"}, "encoder"), ({"input_size": 100}, "input_size"),
                             ({"heads": 3}, "attention_dim"), ({"frames": 0}, "frames"), ({"dropout": 1.0}, "dropout"),
                             ({"temporal_encoder": False}, "cross_attention"), ({"colour": 1}, "colour")]:
        with pytest.raises(ValueError, match=field):
            STCNetConfig.from_preset("lite", **overrides)
    with pytest.raises(ValueError, match="preset"):
        STCNetConfig.from_preset("huge")
    with pytest.raises(ValueError, match="unknown fields"):
        STCNetConfig.from_dict({**config.to_dict(), "extra": 1})


def test_ablation_rows(hand_model):
    assert set(ABLATIONS) == {"baseline", "baseline+te", "baseline+te+pc", "baseline+te+pc+tc", "no-mhca"}
    base = ablation("baseline")
    assert not (base.temporal_encoder or base.interpenetration_loss or base.smooth_loss)
    full = ablation("baseline+te+pc+tc")
    assert full.temporal_encoder and full.cross_attention and full.interpenetration_loss and full.smooth_loss
    with pytest.raises(ValueError, match="ablation"):
        ablation("baseline+xyz")

    counts = {}
    for name in ("baseline", "no-mhca", "baseline+te"):
        config = ablation(name).apply(STCNetConfig.from_preset("lite", input_size=SMALL, dropout=0.0))
        net = STCNet(config, hand_model, imagenet_weights=None).eval()
        counts[name] = sum(p.numel() for p in net.parameters())
        with torch.no_grad():
            out = net(images(1, 2, SMALL))
        assert (out.mhsa_attention is None) == (name == "baseline")
        assert (out.mhca_attention is None) == (name != "baseline+te")
        assert net.temporal is None if name == "baseline" else net.temporal is not None
    assert counts["no-mhca"] < counts["baseline+te"]
