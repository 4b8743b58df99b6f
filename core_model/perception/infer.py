"""The perception on whole frames: find the two-hand crop, perceive it, and map everything back to the frame.

The network sees a square crop around both hands. On a frame with no crop given, it looks coarse to fine: the
whole frame (letterboxed), then the box of what it found, enlarged, until the box settles; on a video the
previous frame's box seeds the next frame and the search runs only when the hands are lost.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import torch

from core_model.perception.model import PerceptionNet, decode, flip_output, inference_copy

CROP_MARGIN = 1.5      # crop side over the found hands' box side (training drew 1.15-3)
MIN_PRESENCE = 0.5
REFINE_PASSES = 2


@dataclasses.dataclass
class FramePerception:
    """One frame. keypoints [2, 21, 2] frame pixels (NaN on a hand not found; hidden ones are placed, with a low
    confidence); confidence [2, 21];
    presence [2]; box [3] x, y, side of the square crop in frame pixels; crop_labels [s, s] uint8 (0/1/2) over
    that crop; handedness in [0.5, 1]: how sure the right/left assignment is; found [2] bool."""

    keypoints: np.ndarray
    confidence: np.ndarray
    presence: np.ndarray
    box: np.ndarray
    crop_labels: np.ndarray
    handedness: float = 1.0

    @property
    def found(self) -> np.ndarray:
        return self.presence >= MIN_PRESENCE

    def frame_labels(self, height: int, width: int) -> np.ndarray:
        """The segmentation pasted into a frame of ``height`` x ``width`` (0 outside the crop)."""
        x, y, side = self.box
        s = self.crop_labels.shape[0]
        matrix = np.array([[side / s, 0, x + side / s / 2 - 0.5], [0, side / s, y + side / s / 2 - 0.5]])
        return cv2.warpAffine(self.crop_labels, matrix, (width, height), flags=cv2.INTER_NEAREST, borderValue=0)


def crop_square(image: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """The square ``box`` (x, y, side; may reach past the frame, filled with grey) resampled to ``size``."""
    x, y, side = (float(v) for v in box)
    scale = size / side
    matrix = np.array([[scale, 0, -x * scale + scale / 2 - 0.5], [0, scale, -y * scale + scale / 2 - 0.5]])
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(image, matrix, (size, size), flags=interp, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(114, 114, 114))


def square_around(lo: np.ndarray, hi: np.ndarray, margin: float = CROP_MARGIN, minimum: float = 24.0) -> np.ndarray:
    side = max(float((hi - lo).max()) * margin, minimum)
    centre = (lo + hi) / 2
    return np.array([centre[0] - side / 2, centre[1] - side / 2, side])


class FramePerceiver:
    """Runs a :class:`PerceptionNet` on RGB frames of any size; keeps the last box as the next frame's seed."""

    def __init__(self, model: PerceptionNet, device: str | torch.device = "cpu", flip_average: bool = False) -> None:
        self.model = inference_copy(model).to(device)
        self.device = torch.device(device)
        self.size = model.config.input_size
        self.flip_average = flip_average
        self._track: np.ndarray | None = None

    def reset(self) -> None:
        self._track = None

    @torch.no_grad()
    def _run(self, image: np.ndarray, box: np.ndarray) -> FramePerception:
        crop = crop_square(image, box, self.size)
        x = torch.from_numpy(crop).to(self.device).permute(2, 0, 1)[None].float().div_(255)
        x = x.contiguous(memory_format=torch.channels_last)
        out = self.model(x)
        if self.flip_average:
            mirrored = flip_output(self.model(x.flip(-1)))
            out = type(out)(**{f.name: None if getattr(out, f.name) is None else
                               0.5 * (getattr(out, f.name) + getattr(mirrored, f.name))
                               for f in dataclasses.fields(out)})
        pred = decode(out, self.size)
        scale = box[2] / self.size
        kp = pred.keypoints[0].cpu().numpy().astype(np.float64) * scale + box[:2] + scale / 2 - 0.5
        conf = pred.confidence[0].cpu().numpy()
        presence = pred.presence[0].cpu().numpy()
        kp[presence < MIN_PRESENCE] = np.nan
        return FramePerception(keypoints=kp, confidence=conf, presence=presence, box=np.asarray(box, float),
                               crop_labels=pred.labels[0].cpu().numpy(), handedness=float(pred.handedness[0]))

    def _hands_box(self, result: FramePerception) -> tuple[np.ndarray, np.ndarray] | None:
        """(lo, hi) frame pixels of what was found: the mask's extent, widened by confident keypoints."""
        ys, xs = np.nonzero(result.crop_labels)
        if len(xs) < 12:
            return None
        scale = result.box[2] / self.size
        pts = np.stack([xs, ys], 1) * scale + result.box[:2]
        kp = result.keypoints[np.isfinite(result.keypoints).all(-1) & (result.confidence > 0.5)]
        pts = np.concatenate([pts, kp]) if len(kp) else pts
        lo, hi = np.percentile(pts, 1, 0), np.percentile(pts, 99, 0)
        return lo, hi

    def __call__(self, image: np.ndarray, box: np.ndarray | None = None) -> FramePerception:
        """image RGB uint8 [H, W, 3]; ``box`` (x, y, side) to use that crop as is."""
        if box is not None:
            return self._run(image, np.asarray(box, float))
        h, w = image.shape[:2]
        seeds = [self._track] if self._track is not None else []
        seeds.append(np.array([w / 2 - max(h, w) / 2, h / 2 - max(h, w) / 2, max(h, w)], float))
        for seed in seeds:
            result = self._run(image, seed)
            for _ in range(REFINE_PASSES):
                found = self._hands_box(result)
                if found is None:  # zoom on the masks even when presence is unsure: it is judged on the zoom
                    break
                result = self._run(image, square_around(*found))
            if result.found.any():
                found = self._hands_box(result)
                self._track = square_around(*found) if found is not None else None
                return result
        self._track = None
        return result
