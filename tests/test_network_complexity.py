"""Complexity figures: the paper preset's parameter count against Table 4, the FLOP convention, the CLI."""

from __future__ import annotations

import pytest
import torch

from core_model.cli import main
from core_model.handmodel.registry import load_hand_model
from core_model.network import STCNet, STCNetConfig
from core_model.network.complexity import (
    PAPER_PARAMETERS,
    count_flops,
    count_parameters,
    format_complexity,
    measure_complexity,
)
from core_model.network.resnet import ResNetTrunk


@pytest.fixture(scope="module")
def hand_model():
    return load_hand_model("auto")


def test_paper_preset_parameters_within_ten_percent_of_table_4(hand_model):
    total, by_part = count_parameters(STCNet(STCNetConfig.from_preset("paper"), hand_model, imagenet_weights=None))
    assert abs(total - PAPER_PARAMETERS) <= 0.10 * PAPER_PARAMETERS, f"{total / 1e6:.2f} M"
    assert sum(by_part.values()) == total and by_part["hand_model"] == 0
    assert by_part["encoder"] == 25_557_032 - 2_049_000   # torchvision's ResNet-50 without fc


def test_flop_counter_counts_two_per_multiply_add():
    # ResNet-50 at 224 x 224 is the literature's "4.1 GFLOPs", which are multiply-adds: torch counts twice that.
    from torch.utils.flop_counter import FlopCounterMode

    trunk = ResNetTrunk("resnet50").eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        trunk(torch.zeros(1, 3, 224, 224))
    macs = counter.get_total_flops() / 2
    assert 4.05e9 < macs < 4.15e9


def test_flops_split_by_part_and_scale_with_the_window(hand_model):
    torch.manual_seed(0)
    net = STCNet(STCNetConfig.from_preset("lite", input_size=64), hand_model, imagenet_weights=None)
    total2, parts2 = count_flops(net, 2)
    total4, parts4 = count_flops(net, 4)
    assert sum(parts2.values()) == total2 and sum(parts4.values()) == total4
    assert parts4["encoder"] == 2 * parts2["encoder"]            # the encoder runs once per frame
    assert parts4["temporal"] > 2 * parts2["temporal"] * 0.99     # attention grows at least linearly
    assert net.training  # count_flops restores the mode


def test_measure_and_format(hand_model):
    c = measure_complexity(STCNetConfig.from_preset("lite", input_size=64), hand_model, frames=3, latency_runs=1)
    assert c.frames == 3 and c.latency_ms is not None and c.latency_ms > 0
    assert c.flops_per_frame == c.flops_window / 3 and c.macs_per_frame == c.flops_per_frame / 2
    text = format_complexity(c)
    assert "2 FLOPs per multiply-add" in text and "55.4 M" in text and "16.5 G" in text
    with pytest.raises(ValueError, match="frames"):
        measure_complexity(STCNetConfig.from_preset("lite", input_size=64), hand_model, frames=0)


def test_info_complexity_command(capsys):
    assert main(["info", "--preset", "lite", "--complexity"]) == 0
    out = capsys.readouterr().out
    assert "STCNet preset 'lite'" in out and "efficientnet_lite0 at 224x224, T = 10" in out
    assert "parameters" in out and "FLOPs per frame" in out and "latency per window" in out
    assert main(["info", "--preset", "paper"]) == 0
    assert "encoder=resnet50" in capsys.readouterr().out
