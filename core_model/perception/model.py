"""The perception network: both hands of one two-hand crop, seen densely.

On the frame encoder STCNet uses (EfficientNet-Lite0, fine-tuned here), a light feature pyramid (top-down, as
in FPN, with depthwise-separable convolutions to stay within a CPU budget) feeds three heads:

- segmentation at stride 2: background / right hand / left hand (forearms are background: eq. 1's
  hand-chirality maps weigh the hand, and a sleeve or bare forearm says nothing about the fingers);
- 42 keypoint heatmaps at stride 4 (right hand's 21, then the left's), each a sigmoid map whose peak is 1 on a
  visible keypoint and :data:`OCCLUDED_PEAK` on a hidden one: the peak is the keypoint's confidence;
- a presence score per hand from the pooled stride-32 features.

Keypoints are read from the heatmaps by argmax plus a parabola through the log-heatmap around it (sub-cell).

Hand order (:attr:`PerceptionConfig.hand_order`): with ``"chirality"`` the heads' two hands are right and left
directly, so every pixel and keypoint must be told right from left by its looks, which renders teach slowly (at
2,000 steps masks and skeletons still mixed the hands). With ``"image"`` the heads' two hands are ordered by where
they are in the crop (slot 0: the hand whose keypoints' mean lies further left), a geometric rule that keeps
each hand's pixels and keypoints together; a chirality head then says, per slot, whether that hand is a right
hand (from the slot's pooled features), and :func:`decode` returns right and left as ever.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from core_model.network.efficientnet_lite import PYRAMID_CHANNELS
from core_model.network.encoder import DEFAULT_WEIGHTS, FrameEncoder

NUM_KEYPOINTS = 21
CLASSES = ("background", "right", "left")
OCCLUDED_PEAK = 0.5
HEATMAP_STRIDE = 4
SEG_STRIDE = 2
CHECKPOINT_FORMAT = "interhand-perception"
HAND_ORDERS = ("chirality", "image")


@dataclasses.dataclass(frozen=True)
class PerceptionConfig:
    input_size: int = 160
    width: int = 64           # pyramid channels at strides 4-16
    seg_width: int = 32       # channels of the stride-2 segmentation branch
    hand_order: str = "chirality"

    def __post_init__(self) -> None:
        if self.input_size % 32 or self.input_size < 64:
            raise ValueError(f"input_size: expected a multiple of 32, at least 64, got {self.input_size}")
        if self.hand_order not in HAND_ORDERS:
            raise ValueError(f"hand_order: expected one of {HAND_ORDERS}, got {self.hand_order!r}")


@dataclasses.dataclass
class PerceptionOutput:
    """Raw outputs for a batch of N crops of side S.

    seg_logits [N, 3, S/2, S/2] (background, hand 0, hand 1); heatmap_logits [N, 2, 21, S/4, S/4];
    presence_logits [N, 2]; hands 0 and 1 are right and left, or (``chirality_logits`` [N, 2] given: the logit that
    each is a right hand) the crop's hands in image order."""

    seg_logits: torch.Tensor
    heatmap_logits: torch.Tensor
    presence_logits: torch.Tensor
    chirality_logits: torch.Tensor | None = None


@dataclasses.dataclass
class Perception:
    """Decoded outputs in crop pixels (0 .. S-1, pixel centres at integers).

    keypoints [N, 2, 21, 2]; confidence [N, 2, 21] in [0, 1]; presence [N, 2] in [0, 1]; labels [N, S, S] uint8
    (0 background, 1 right, 2 left); probabilities [N, 3, S, S]; handedness [N] in [0.5, 1]: how sure the
    right/left assignment is (1 where the model outputs right and left directly)."""

    keypoints: torch.Tensor
    confidence: torch.Tensor
    presence: torch.Tensor
    labels: torch.Tensor
    probabilities: torch.Tensor
    handedness: torch.Tensor


def _separable(channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False), nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True), nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True))


def _lateral(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))


class PerceptionNet(nn.Module):
    """Crops [N, 3, S, S] in [0, 1] -> :class:`PerceptionOutput`."""

    def __init__(self, config: PerceptionConfig | None = None,
                 imagenet_weights: str | os.PathLike[str] | None = DEFAULT_WEIGHTS) -> None:
        super().__init__()
        self.config = config or PerceptionConfig()
        w, ws = self.config.width, self.config.seg_width
        self.encoder = FrameEncoder("efficientnet_lite0", imagenet_weights)
        c2, c4, c8, c16, c32 = PYRAMID_CHANNELS
        self.lat32, self.lat16, self.lat8, self.lat4 = (_lateral(c, w) for c in (c32, c16, c8, c4))
        self.smooth16, self.smooth8 = _separable(w), _separable(w)
        self.smooth4 = nn.Sequential(_separable(w), _separable(w))
        self.heatmaps = nn.Conv2d(w, 2 * NUM_KEYPOINTS, 1)
        self.lat2 = _lateral(c2, ws)
        self.reduce2 = _lateral(w, ws)
        self.smooth2 = _separable(ws)
        self.segment = nn.Conv2d(ws, len(CLASSES), 1)
        self.presence = nn.Linear(c32, 2)
        nn.init.constant_(self.heatmaps.bias, -4.0)  # start near "no keypoint here" (sparse targets)
        if self.config.hand_order == "image":  # one head for both slots: chirality belongs to a hand, not a slot
            self.chirality = nn.Sequential(nn.Linear(c32 + w, 64), nn.ReLU(inplace=True), nn.Linear(64, 1))

    def forward(self, images: torch.Tensor) -> PerceptionOutput:
        f2, f4, f8, f16, f32 = self.encoder.pyramid(images)

        def up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
            return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)

        p16 = self.smooth16(self.lat16(f16) + up(self.lat32(f32), f16))
        p8 = self.smooth8(self.lat8(f8) + up(p16, f8))
        p4 = self.smooth4(self.lat4(f4) + up(p8, f4))
        p2 = self.smooth2(self.lat2(f2) + up(self.reduce2(p4), f2))
        n, _, h4, w4 = p4.shape
        heat = self.heatmaps(p4).view(n, 2, NUM_KEYPOINTS, h4, w4)
        seg = self.segment(p2)
        chirality = None
        if self.config.hand_order == "image":
            # Each slot's features pooled over its own (predicted, detached) mask, coarse and fine.
            hands = seg.detach().softmax(1)[:, 1:]
            pooled = []
            for feats in (f32, p4):
                weight = F.adaptive_avg_pool2d(hands, feats.shape[-2:])
                weight = weight / weight.sum((2, 3), keepdim=True).clamp_min(1e-6)
                pooled.append(torch.einsum("nkyx,ncyx->nkc", weight, feats))
            chirality = self.chirality(torch.cat(pooled, -1)).squeeze(-1)
        presence = self.presence(f32.mean(dim=(2, 3)))
        return PerceptionOutput(seg_logits=seg, heatmap_logits=heat, presence_logits=presence,
                                chirality_logits=chirality)

    @torch.no_grad()
    def perceive(self, images: torch.Tensor) -> Perception:
        """Crops -> decoded :class:`Perception` (eval mode is the caller's: ``model.eval()``)."""
        return decode(self(images), images.shape[-1])


def heatmap_peaks(heatmaps: torch.Tensor, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Heatmaps [..., h, w] in [0, 1] -> (positions [..., 2] in input pixels, peak values [...]): the argmax cell
    moved by a parabola through the log of its row and column neighbours (exact for a Gaussian peak; a 3x3 mean
    is biased toward the cell centre). A cell centre at (i, j) maps to pixel j * stride + (stride - 1) / 2."""
    *lead, h, w = heatmaps.shape
    flat = heatmaps.reshape(-1, h, w)
    peak, index = flat.view(flat.shape[0], -1).max(-1)
    iy, ix = index // w, index % w
    padded = F.pad(flat, (1, 1, 1, 1))
    step = torch.arange(3, device=flat.device)
    rows = torch.arange(flat.shape[0], device=flat.device)[:, None, None]
    patch = padded[rows, iy[:, None, None] + step[None, :, None], ix[:, None, None] + step[None, None, :]]
    patch = patch.clamp_min(1e-6).log()                                                     # [M, 3, 3]

    def vertex(left: torch.Tensor, centre: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        curvature = left - 2 * centre + right
        offset = 0.5 * (left - right) / curvature.clamp_max(-1e-6)
        return offset.clamp(-0.5, 0.5)

    dx = vertex(patch[:, 1, 0], patch[:, 1, 1], patch[:, 1, 2])
    dy = vertex(patch[:, 0, 1], patch[:, 1, 1], patch[:, 2, 1])
    x = (ix.to(flat.dtype) + dx) * stride + (stride - 1) / 2
    y = (iy.to(flat.dtype) + dy) * stride + (stride - 1) / 2
    return torch.stack([x, y], -1).reshape((*lead, 2)), peak.reshape(tuple(lead))


def slot_sides(output: PerceptionOutput) -> tuple[torch.Tensor, torch.Tensor]:
    """Image-ordered outputs: (slot0_is_right [N] bool, handedness [N] in [0.5, 1]). The two slots' chirality
    logits vote, each weighed by its hand's presence (a slot without a hand has no say)."""
    chir = output.chirality_logits
    presence = torch.sigmoid(output.presence_logits)
    vote = chir[:, 0] * presence[:, 0] - chir[:, 1] * presence[:, 1]
    return vote >= 0, torch.sigmoid(vote.abs())


def to_right_left(output: PerceptionOutput) -> tuple[PerceptionOutput, torch.Tensor]:
    """Outputs with hand 0 = right and 1 = left, and the assignment's certainty [N] (ones when the model outputs
    right and left directly)."""
    n = output.presence_logits.shape[0]
    if output.chirality_logits is None:
        return output, torch.ones(n, device=output.presence_logits.device)
    right_first, certainty = slot_sides(output)
    order = torch.where(right_first[:, None], torch.tensor([0, 1], device=right_first.device),
                        torch.tensor([1, 0], device=right_first.device))                       # [N, 2]
    rows = torch.arange(n, device=order.device)[:, None]
    seg = torch.cat([output.seg_logits[:, :1], output.seg_logits[:, 1:][rows, order]], 1)
    return PerceptionOutput(seg_logits=seg, heatmap_logits=output.heatmap_logits[rows, order],
                            presence_logits=output.presence_logits[rows, order]), certainty


def _argmax3(probabilities: torch.Tensor) -> torch.Tensor:
    """argmax over the three classes [N, 3, H, W] -> uint8 [N, H, W] by comparisons: torch's argmax over a dimension
    of three took 2.4 ms of the 4 ms decode of a 160-px crop here."""
    background, right, left = probabilities.unbind(1)
    labels = torch.zeros_like(background, dtype=torch.uint8)
    labels[(right > background) & (right >= left)] = 1
    labels[(left > background) & (left > right)] = 2
    return labels


def decode(output: PerceptionOutput, size: int) -> Perception:
    """Raw outputs -> keypoints, confidences, presence and the segmentation at the crop's full size, hand 0 the
    right hand and 1 the left."""
    output, handedness = to_right_left(output)
    heat = torch.sigmoid(output.heatmap_logits)
    keypoints, peak = heatmap_peaks(heat, size // heat.shape[-1])
    probabilities = F.interpolate(output.seg_logits.contiguous(), size=(size, size), mode="bilinear",
                                  align_corners=False).softmax(1)
    return Perception(keypoints=keypoints, confidence=peak.clamp(0, 1), presence=torch.sigmoid(output.presence_logits),
                      labels=_argmax3(probabilities), probabilities=probabilities,
                      handedness=handedness)


def flip_output(output: PerceptionOutput) -> PerceptionOutput:
    """The outputs a mirror image should give: mirrored left to right, with the two hands swapped (right and left;
    or, image-ordered, the slots, each hand's chirality reversed). Used for test-time flip averaging."""
    seg = output.seg_logits.flip(-1)[:, [0, 2, 1]]
    chirality = None if output.chirality_logits is None else -output.chirality_logits[:, [1, 0]]
    return PerceptionOutput(seg_logits=seg, heatmap_logits=output.heatmap_logits.flip(-1)[:, [1, 0]],
                            presence_logits=output.presence_logits[:, [1, 0]], chirality_logits=chirality)


def chirality_targets(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Supervision for STCNet's hand-chirality weight maps (eq. 1) from a right/left segmentation: labels
    [N, H, W] (0 background, 1 right, 2 left; forearm codes 3/4 count as background) -> [N, 2, h, w], the share
    of each cell of the ``size`` grid covered by the right and by the left hand. A perception's
    ``probabilities[:, 1:]`` resized the same way serve on real video, where no labels exist."""
    onehot = torch.stack([labels == 1, labels == 2], 1).float()
    return F.adaptive_avg_pool2d(onehot, size)


def chirality_loss(weight_maps: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of STCNet's weight maps [N, 2, h, w] in (0, 1) against :func:`chirality_targets`."""
    return F.binary_cross_entropy(weight_maps.clamp(1e-6, 1 - 1e-6), targets)


def inference_copy(model: PerceptionNet) -> PerceptionNet:
    """A copy for inference only: every batch norm folded into the convolution before it, weights in channels-last
    layout (both exact up to float rounding). On one core of this CPU, 19 -> 12 ms a 160-px crop: the depthwise
    convolutions take oneDNN's fast path only in channels-last, and 64 batch-norm passes go."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fused = copy.deepcopy(model).eval()
    trunk = fused.encoder.trunk
    trunk._conv_stem, trunk._bn0 = fuse_conv_bn_eval(trunk._conv_stem, trunk._bn0), nn.Identity()
    for block in trunk._blocks:
        if block.expand:
            block._expand_conv, block._bn0 = fuse_conv_bn_eval(block._expand_conv, block._bn0), nn.Identity()
        block._depthwise_conv, block._bn1 = fuse_conv_bn_eval(block._depthwise_conv, block._bn1), nn.Identity()
        block._project_conv, block._bn2 = fuse_conv_bn_eval(block._project_conv, block._bn2), nn.Identity()
    for module in fused.modules():
        if isinstance(module, nn.Sequential):
            for i in range(len(module) - 1):
                if isinstance(module[i], nn.Conv2d) and isinstance(module[i + 1], nn.BatchNorm2d):
                    module[i], module[i + 1] = fuse_conv_bn_eval(module[i], module[i + 1]), nn.Identity()
    return fused.to(memory_format=torch.channels_last)


# ------------------------------------------------------------------------------------------------ checkpoints


def save_perception(model: PerceptionNet, path: str | os.PathLike[str], meta: dict | None = None,
                    half: bool = False) -> Path:
    """Write an atomically replaced checkpoint that loads with ``weights_only=True`` (``half``: fp16 weights)."""
    from core_model.fileio import atomic_path

    state = {k: (v.half() if half and v.is_floating_point() else v) for k, v in model.state_dict().items()}
    payload = {"format": CHECKPOINT_FORMAT, "config": dataclasses.asdict(model.config), "state": state,
               "meta": meta or {}}
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_perception(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> tuple[PerceptionNet, dict]:
    """A perception checkpoint -> (model in eval mode on ``device``, its meta). Refuses other checkpoints by name."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no such file {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"checkpoint: {path} cannot be read as a PyTorch checkpoint ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        what = payload.get("format", "no format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"checkpoint: {path} is not a perception checkpoint ({what}); expected format "
                         f"{CHECKPOINT_FORMAT!r}")
    try:
        config = PerceptionConfig(**payload["config"])
    except TypeError as exc:
        raise ValueError(f"checkpoint: {path} has an unknown perception config ({exc})") from exc
    model = PerceptionNet(config, imagenet_weights=None)
    state = {k: v.float() if v.is_floating_point() else v for k, v in payload["state"].items()}
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"checkpoint: {path} does not fit the perception network (missing "
                         f"{result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]})")
    return model.to(device).eval(), dict(payload.get("meta", {}))
