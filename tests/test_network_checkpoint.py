"""STCNet checkpoints: bit-exact round trip, weights_only loading, refusal of another architecture or hand model."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from core_model import __version__
from core_model.handmodel.layer import HandModel
from core_model.handmodel.registry import load_hand_model
from core_model.network import (
    CheckpointMismatchError,
    STCNet,
    STCNetConfig,
    load_checkpoint,
    load_weights,
    read_checkpoint,
    save_checkpoint,
)

SMALL = 64


@pytest.fixture(scope="module")
def hand_model():
    return load_hand_model("auto")


def trained_model(hand_model, **overrides) -> STCNet:
    """A small lite model moved off its initialisation (one optimiser step, running statistics updated)."""
    torch.manual_seed(0)
    net = STCNet(STCNetConfig.from_preset("lite", **{"input_size": SMALL, **overrides}), hand_model,
                 imagenet_weights=None).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-2)
    net(torch.rand(1, 3, 3, SMALL, SMALL)).keypoints.square().mean().backward()
    optimizer.step()
    return net.eval()


def renamed(hand_model: HandModel, name: str) -> HandModel:
    sides = [dataclasses.replace(layer.data, meta={**layer.data.meta, "name": name}) for layer in hand_model.sides]
    return HandModel(*sides)


def test_round_trip_is_bit_exact(hand_model, tmp_path):
    net = trained_model(hand_model)
    path = save_checkpoint(tmp_path / "stcnet.pt", net, extra={"epoch": 3, "metrics": {"mpjpe_mm": 12.5}})
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["hand_model"] == hand_model.name and raw["software_version"] == __version__
    assert raw["config"] == net.config.to_dict()
    assert not any(k.startswith("hand_model.") for k in raw["state_dict"])

    loaded, ckpt = load_checkpoint(path, hand_model)
    assert ckpt.extra == {"epoch": 3, "metrics": {"mpjpe_mm": 12.5}} and ckpt.config == net.config
    assert set(loaded.state_dict()) == set(net.state_dict())
    for name, tensor in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    x = torch.rand(1, 4, 3, SMALL, SMALL, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        a, b = net(x), loaded(x)
    for name, tensor in a.tensors().items():
        assert torch.equal(tensor, b.tensors()[name]), name

    # load_checkpoint without a hand model loads the one named in the file.
    by_name, _ = load_checkpoint(path)
    assert by_name.hand_model_name == hand_model.name
    # No temporary file is left beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stcnet.pt"]


def test_another_architecture_is_refused(hand_model, tmp_path):
    path = save_checkpoint(tmp_path / "lite.pt", trained_model(hand_model))
    other = STCNet(STCNetConfig.from_preset("lite", input_size=SMALL, encoder="resnet18", out_dim=64), hand_model,
                   imagenet_weights=None)
    with pytest.raises(CheckpointMismatchError, match=r"another architecture.*encoder: checkpoint "
                                                      r"'efficientnet_lite0', model 'resnet18'.*out_dim"):
        load_weights(other, path)


def test_another_hand_model_is_refused(hand_model, tmp_path):
    path = save_checkpoint(tmp_path / "lite.pt", trained_model(hand_model))
    other = renamed(hand_model, "SomeOtherHand")
    with pytest.raises(CheckpointMismatchError, match=f"trained with hand model '{hand_model.name}'.*"
                                                      "'SomeOtherHand'"):
        load_checkpoint(path, other)
    saved_other = save_checkpoint(tmp_path / "other.pt", STCNet(STCNetConfig.from_preset("lite", input_size=SMALL),
                                                                other, imagenet_weights=None))
    with pytest.raises(CheckpointMismatchError, match="names hand model 'SomeOtherHand'"):
        load_checkpoint(saved_other)


def test_missing_and_unexpected_weights_are_named(hand_model, tmp_path):
    net = trained_model(hand_model)
    path = save_checkpoint(tmp_path / "lite.pt", net)
    payload = torch.load(path, weights_only=True)
    payload["state_dict"].pop("decoder.translation.4.bias")
    payload["state_dict"]["decoder.extra_head.weight"] = torch.zeros(3)
    torch.save(payload, tmp_path / "tampered.pt")
    with pytest.raises(CheckpointMismatchError, match=r"1 missing weights \(e.g. \['decoder.translation.4.bias'\]\), "
                                                      r"1 unexpected \(e.g. \['decoder.extra_head.weight'\]\)"):
        load_weights(net, tmp_path / "tampered.pt")


def test_unreadable_files_and_unstorable_extras(hand_model, tmp_path):
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a readable STCNet checkpoint"):
        read_checkpoint(tmp_path / "text.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an STCNet checkpoint"):
        read_checkpoint(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        read_checkpoint(tmp_path / "missing.pt")
    net = trained_model(hand_model)
    with pytest.raises(ValueError, match=r"extra\['when'\]"):
        save_checkpoint(tmp_path / "x.pt", net, extra={"when": object()})
    assert not (tmp_path / "x.pt").exists()


def test_half_checkpoint_is_half_the_size_and_predicts_the_same(hand_model, tmp_path):
    net = trained_model(hand_model)
    full = save_checkpoint(tmp_path / "full.pt", net)
    half = save_checkpoint(tmp_path / "half.pt", net, half=True)
    raw = torch.load(half, map_location="cpu", weights_only=True)["state_dict"]
    assert all(v.dtype == torch.float16 for v in raw.values() if v.is_floating_point())
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded, _ = load_checkpoint(half, hand_model)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())  # cast back on loading
    x = torch.rand(1, 4, 3, SMALL, SMALL, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        a, b = net(x), loaded(x)
    # fp16 weights: about 3 significant digits, so keypoints move by well under a millimetre
    assert (a.keypoints - b.keypoints).abs().max() < 5e-4


def test_frozen_encoder_layers_keep_weights_and_statistics(hand_model):
    torch.manual_seed(0)
    net = STCNet(STCNetConfig.from_preset("lite", input_size=SMALL), hand_model, imagenet_weights=None)
    net.encoder.freeze(8)
    trunk = net.encoder.trunk
    frozen = {k: v.clone() for k, v in trunk.state_dict().items() if k.startswith(("_conv_stem", "_bn0", "_blocks.0.",
                                                                                 "_blocks.4."))}
    later = trunk._blocks[5]._project_conv.weight.clone()
    assert not any(p.requires_grad for layer in net.encoder.frozen for p in layer.parameters())
    net.train()
    assert not trunk._bn0.training and trunk._blocks[5].training  # model.train() leaves frozen layers in eval
    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    net(torch.rand(1, 3, 3, SMALL, SMALL)).keypoints.square().mean().backward()
    optimizer.step()
    for k, v in frozen.items():
        assert torch.equal(trunk.state_dict()[k], v), k  # weights and running statistics
    assert not torch.equal(trunk._blocks[5]._project_conv.weight, later)
    with pytest.raises(ValueError, match="stride"):
        net.encoder.freeze(-1)
