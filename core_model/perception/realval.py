"""The real validation set: frames of real two-hand footage labelled by hand, and how a perception is scored on it.

The footage itself is not ours to ship, so the set is the labels plus a description of each source (file name,
SHA-256, origin, licence); frames are read from a media folder the user has (``../shared/real-media`` here) and
the file's hash is checked, so labels never meet the wrong video.

Layout of the set's folder (``benchmarks/real_validation``)::

    sources.json      {name: {file, sha256, origin, licence, notes}}
    labels/ID.json    one labelled frame: source, frame, touching, hands {right|left: {present, keypoints, mask}},
                      labeller, notes

Keypoints are frame pixels in our 21-point order (DESIGN section 3), ``null`` where the labeller could not place
the point; ``mask`` is an optional list of polygons (each a list of [x, y]) covering the hand (not the forearm).
"right"/"left" are the person's hands, judged from the anatomy (thumb side, palm or back), not the image side.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import cv2
import numpy as np

from core_model.geometry.hand_box import box_side
from core_model.results import file_sha256

FORMAT = "interhand-real-validation"
HANDS = ("right", "left")
DEFAULT_FOLDER = Path(__file__).resolve().parents[2] / "benchmarks" / "real_validation"
PCK_THRESHOLD = 0.1


@dataclasses.dataclass(frozen=True)
class Source:
    name: str
    file: str
    sha256: str
    origin: str
    licence: str


@dataclasses.dataclass
class LabelledFrame:
    """One labelled frame. keypoints [2, 21, 2] frame pixels, NaN where unlabelled; present [2] bool (a person sees
    the hand); polygons per hand (empty: no mask labelled); touching: the hands touch or overlap."""

    id: str
    source: str
    frame: int
    keypoints: np.ndarray
    present: np.ndarray
    polygons: tuple[list[np.ndarray], list[np.ndarray]]
    touching: bool
    labeller: str = ""
    notes: str = ""

    @property
    def has_mask(self) -> bool:
        return any(len(p) for p in self.polygons)

    def mask(self, height: int, width: int) -> np.ndarray:
        """[H, W] uint8 labels: 0 background, 1 right hand, 2 left hand (the left drawn last where they overlap,
        as a polygon labeller sees the nearer hand; overlaps are rare in hand-drawn polygons)."""
        out = np.zeros((height, width), np.uint8)
        for h in range(2):
            for poly in self.polygons[h]:
                cv2.fillPoly(out, [np.round(poly).astype(np.int32)], h + 1)
        return out


@dataclasses.dataclass
class RealValidationSet:
    folder: Path
    sources: dict[str, Source]
    frames: list[LabelledFrame]


def _parse_frame(path: Path, item: dict, sources: dict[str, Source]) -> LabelledFrame:
    def fail(what: str) -> ValueError:
        return ValueError(f"{path}: {what}")

    if item.get("source") not in sources:
        raise fail(f"source {item.get('source')!r} is not in sources.json ({sorted(sources)})")
    frame = item.get("frame")
    if not isinstance(frame, int) or frame < 0:
        raise fail(f"frame: expected a non-negative integer, got {frame!r}")
    hands = item.get("hands")
    if not isinstance(hands, dict) or set(hands) - set(HANDS):
        raise fail(f"hands: expected an object with keys among {HANDS}, got {hands!r:.80}")
    keypoints = np.full((2, 21, 2), np.nan)
    present = np.zeros(2, bool)
    polygons: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
    for h, name in enumerate(HANDS):
        hand = hands.get(name, {"present": False})
        present[h] = bool(hand.get("present", False))
        points = hand.get("keypoints")
        if points is not None:
            if not isinstance(points, list) or len(points) != 21:
                raise fail(f"hands.{name}.keypoints: expected 21 entries ([x, y] or null)")
            for k, p in enumerate(points):
                if p is None:
                    continue
                if not (isinstance(p, list) and len(p) == 2 and all(isinstance(v, (int, float)) for v in p)):
                    raise fail(f"hands.{name}.keypoints[{k}]: expected [x, y] or null, got {p!r}")
                keypoints[h, k] = p
        if not present[h] and np.isfinite(keypoints[h]).any():
            raise fail(f"hands.{name}: keypoints labelled on a hand marked not present")
        for poly in hand.get("mask", []) or []:
            arr = np.asarray(poly, dtype=np.float64)
            if arr.ndim != 2 or arr.shape[1] != 2 or len(arr) < 3:
                raise fail(f"hands.{name}.mask: each polygon needs at least three [x, y] points")
            polygons[h].append(arr)
    return LabelledFrame(id=path.stem, source=item["source"], frame=frame, keypoints=keypoints, present=present,
                         polygons=polygons, touching=bool(item.get("touching", False)),
                         labeller=str(item.get("labeller", "")), notes=str(item.get("notes", "")))


def load_validation_set(folder: str | os.PathLike[str] = DEFAULT_FOLDER) -> RealValidationSet:
    """Read ``sources.json`` and every ``labels/*.json`` of ``folder``; errors name the file and what is wrong."""
    folder = Path(folder)
    index = folder / "sources.json"
    if not index.is_file():
        raise FileNotFoundError(f"real validation set: no {index}")
    raw = json.loads(index.read_text())
    if raw.get("format") != FORMAT:
        raise ValueError(f"{index}: format is {raw.get('format')!r}, expected {FORMAT!r}")
    sources = {name: Source(name=name, file=s["file"], sha256=s["sha256"], origin=s.get("origin", ""),
                            licence=s.get("licence", "")) for name, s in raw["sources"].items()}
    frames = []
    for path in sorted((folder / "labels").glob("*.json")):
        try:
            item = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from exc
        frames.append(_parse_frame(path, item, sources))
    return RealValidationSet(folder=folder, sources=sources, frames=frames)


class FrameReader:
    """Reads labelled frames from the user's copies of the source videos, checking each file's SHA-256 once."""

    def __init__(self, dataset: RealValidationSet, media: str | os.PathLike[str]) -> None:
        self.dataset = dataset
        self.media = Path(media)
        self._checked: dict[str, Path] = {}

    def available(self, source: str) -> bool:
        return (self.media / self.dataset.sources[source].file).is_file()

    def path(self, source: str) -> Path:
        if source not in self._checked:
            src = self.dataset.sources[source]
            path = self.media / src.file
            if not path.is_file():
                raise FileNotFoundError(f"media: no {src.file} in {self.media} (source {source!r})")
            if file_sha256(path) != src.sha256:
                raise ValueError(f"media: {path} is not the labelled video (SHA-256 differs from {src.sha256[:12]}…)")
            self._checked[source] = path
        return self._checked[source]

    def read(self, frame: LabelledFrame) -> np.ndarray:
        """The frame as RGB uint8 [H, W, 3]."""
        from core_model.pipeline.video import VideoFileSource

        with VideoFileSource(self.path(frame.source)) as video:
            return video.read(frame.frame)


# ------------------------------------------------------------------------------------------------- scoring


@dataclasses.dataclass
class FrameScore:
    """Per labelled frame: correct [2, 21] bool and labelled [2, 21] bool keypoints; found [2] bool (a hand
    predicted where a person sees one); iou [2] (NaN without a labelled mask)."""

    correct: np.ndarray
    labelled: np.ndarray
    found: np.ndarray
    iou: np.ndarray


def score_frame(label: LabelledFrame, keypoints: np.ndarray, found: np.ndarray,
                mask: np.ndarray | None = None, threshold: float = PCK_THRESHOLD) -> FrameScore:
    """Score one prediction: ``keypoints`` [2, 21, 2] frame pixels (NaN where none), ``found`` [2] bool, ``mask``
    [H, W] labels (0/1/2) or None. A keypoint is correct within ``threshold`` of the labelled hand's size (the longer
    side of the box of its labelled keypoints, or of its outline where one is labelled, whichever is larger); a
    hand not found counts all its keypoints wrong."""
    keypoints = np.asarray(keypoints, np.float64)
    if keypoints.shape != (2, 21, 2):
        raise ValueError(f"keypoints: expected shape (2, 21, 2), got {keypoints.shape}")
    labelled = np.isfinite(label.keypoints).all(-1) & label.present[:, None]
    size = box_side(np.where(labelled[..., None], label.keypoints, np.nan))
    for h in range(2):  # sparse labels understate the hand's box: a labelled outline shows all of it
        if label.polygons[h]:
            outline = np.concatenate(label.polygons[h])
            size[h] = np.nanmax([size[h], np.ptp(outline, axis=0).max()])
    dist = np.linalg.norm(keypoints - label.keypoints, axis=-1)
    ok = np.asarray(found, bool)[:, None] & np.isfinite(dist) & (dist <= threshold * size[:, None])
    iou = np.full(2, np.nan)
    if mask is not None and label.has_mask:
        truth = label.mask(*mask.shape[:2])
        for h in range(2):
            if label.polygons[h] or label.present[h]:
                a, b = truth == h + 1, mask == h + 1
                union = (a | b).sum()
                iou[h] = (a & b).sum() / union if union else 1.0
    return FrameScore(correct=ok & labelled, labelled=labelled, found=np.asarray(found, bool) & label.present,
                      iou=iou)


@dataclasses.dataclass
class SetScore:
    frames: int
    keypoints: int
    pck: float
    both_found: float          # share of frames where a person sees both hands that have both found
    both_frames: int
    iou_right: float
    iou_left: float
    masks: int


def summarise(labels: list[LabelledFrame], scores: list[FrameScore]) -> SetScore:
    labelled = sum(int(s.labelled.sum()) for s in scores)
    correct = sum(int(s.correct.sum()) for s in scores)
    both = [s for lab, s in zip(labels, scores) if lab.present.all()]
    ious = np.array([s.iou for s in scores]).reshape(-1, 2)
    with np.errstate(all="ignore"):
        iou = np.nanmean(ious, 0) if np.isfinite(ious).any() else np.full(2, np.nan)
    return SetScore(frames=len(scores), keypoints=labelled, pck=correct / labelled if labelled else float("nan"),
                    both_found=float(np.mean([s.found.all() for s in both])) if both else float("nan"),
                    both_frames=len(both), iou_right=float(iou[0]), iou_left=float(iou[1]),
                    masks=int(np.isfinite(ious).any(1).sum()))
