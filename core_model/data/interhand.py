"""InterHand2.6M (30 fps) as T-frame windows: sequences per capture, sequence and camera, split at gaps.

Files, under ``root``: ``images/{split}/{file_name}`` and, in ``annotations/{split}/`` (or ``annotations/``),
``InterHand2.6M_{split}_data.json`` (COCO style: images with file_name, capture, seq_name, camera, frame_idx;
annotations with bbox, joint_valid, hand_type, hand_type_valid), ``..._camera.json`` (per capture: campos in mm,
camrot world-to-camera, focal, princpt per camera; X_cam = R (X_world - campos)), ``..._joint_3d.json`` (per
capture and frame: world_coord, 42 joints in mm, right 0-20 then left 21-41, each hand thumb tip first and wrist
last; invalid joints are stored as [1, 1, 1]) and, optionally, ``..._MANO_NeuralAnnot.json`` (per capture, frame
and hand: pose 48 = global orient + hand pose minus MANO's mean pose, shape 10, trans in metres, world frame).

Joints go to metres in the camera frame and to our order. MANO parameters are only usable with MANO itself
(OpenHand's pose space differs, DESIGN section 4): they are converted to the camera frame, MANO's mean pose added,
and flagged valid only when the hand model in use is MANO; otherwise training uses the joints.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from core_model.data.annotation_file import Field, read_json
from core_model.data.windows import Augmentation, SequenceAnnotations, WindowDataset, _root_joints, rotate_params
from core_model.handmodel.keypoints import interhand_to_ours

log = logging.getLogger(__name__)

HAND_TYPES = ("right", "left", "interacting")


def _annotation_file(root: Path, split: str, kind: str) -> Path:
    name = f"InterHand2.6M_{split}_{kind}.json"
    for candidate in (root / "annotations" / split / name, root / "annotations" / name, root / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"root: {name} not found under {root / 'annotations' / split} or {root / 'annotations'}")


def _split_runs(frame_ids: list[int]) -> list[list[int]]:
    """Positions of consecutive runs in sorted ``frame_ids``, split where a frame is missing. The frame step is
    the most common difference in the group (1 at 30 fps)."""
    if len(frame_ids) < 2:
        return [list(range(len(frame_ids)))]
    diffs = np.diff(frame_ids)
    positive = diffs[diffs > 0]
    if len(positive):  # the smallest of the most common steps (np.unique sorts; bincount would allocate max+1)
        steps, counts = np.unique(positive, return_counts=True)
        step = int(steps[counts.argmax()])
    else:
        step = 1
    runs, current = [], [0]
    for i, d in enumerate(diffs, start=1):
        if d == step:
            current.append(i)
        elif d > 0:
            runs.append(current)
            current = [i]
    runs.append(current)
    return runs


def _joint_valid(field: Field) -> np.ndarray:
    """[42] joint validity (stored as 42 numbers, flat or one per list)."""
    return field.array(42) > 0


def load_interhand_sequences(root: str | Path, split: str, hand_model, hand_types: tuple[str, ...] = ("interacting",),
                             min_frames: int = 1) -> list[SequenceAnnotations]:
    """Sequences of the ``split`` of InterHand2.6M at ``root`` whose frames show ``hand_types`` (default: the
    interacting subset), grouped by capture, sequence and camera, sorted by frame and split where frames are
    missing; runs shorter than ``min_frames`` are dropped. A file that does not hold what the format says is an
    :class:`~core_model.data.annotation_file.AnnotationError` naming the file, the place and what is wrong; a
    split without any frame of ``hand_types`` is one too."""
    root = Path(root)
    bad = [h for h in hand_types if h not in HAND_TYPES]
    if bad or not hand_types:
        raise ValueError(f"hand_types: expected a subset of {HAND_TYPES}, got {hand_types}")
    data = read_json(_annotation_file(root, split, "data"))
    cameras = read_json(_annotation_file(root, split, "camera"))
    joints = read_json(_annotation_file(root, split, "joint_3d"))
    try:
        mano = read_json(_annotation_file(root, split, "MANO_NeuralAnnot"))
    except FileNotFoundError:
        mano = None
        log.info("InterHand2.6M %s: no MANO_NeuralAnnot file; joints only", split)
    use_mano = mano is not None and hand_model.name == "MANO"

    annotations = {a["image_id"].int(): a for a in data["annotations"].list()}
    groups: dict[tuple, list[tuple[Field, Field]]] = defaultdict(list)
    images = data["images"].list()
    for image in images:
        ann = annotations.get(image["id"].int())
        if ann is None:
            continue
        hand_type = ann["hand_type"].str()
        valid = ann.get("hand_type_valid")
        if hand_type not in hand_types or (valid is not None and not valid.flag()):
            continue
        camera = image["camera"]  # an id: a string in the files, a number in some conversions
        camera_id = str(camera.int()) if isinstance(camera.value, int) else camera.str()
        groups[(image["capture"].int(), image["seq_name"].str(), camera_id)].append((image, ann))
    if not groups:
        raise data.error(f"no frame of hand types {list(hand_types)} among its {len(images)} images")

    sequences = []
    for (capture, seq_name, camera), items in sorted(groups.items()):
        frame_ids = [image["frame_idx"].int() for image, _ in items]
        order = np.argsort(frame_ids, kind="stable")
        items, frame_ids = [items[i] for i in order], sorted(frame_ids)
        cam = cameras[str(capture)]
        R = cam["camrot"][camera].array(9).reshape(3, 3)
        campos = cam["campos"][camera].array(3) / 1000.0
        (fx, fy), (cx, cy) = cam["focal"][camera].array(2), cam["princpt"][camera].array(2)
        K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64)
        for run_number, run in enumerate(_split_runs(frame_ids)):
            if len(run) < min_frames:
                continue
            seq = _build_sequence(root, split, f"Capture{capture}/{seq_name}/cam{camera}#{run_number}",
                                  [items[i] for i in run], joints[str(capture)],
                                  (mano.get(str(capture)) or Field({}, mano.file, str(capture))) if use_mano else None,
                                  R, campos, K, hand_model)
            sequences.append(seq)
    return sequences


def _build_sequence(root: Path, split: str, name: str, items: list[tuple[Field, Field]], joints: Field,
                    mano: Field | None, R: np.ndarray, campos: np.ndarray, K: np.ndarray,
                    hand_model) -> SequenceAnnotations:
    n = len(items)
    kp = np.zeros((n, 42, 3))
    valid = np.zeros((n, 42), bool)
    labelled = np.zeros(n, bool)
    boxes = np.full((n, 2, 4), np.nan)
    hand_type = []
    for t, (image, ann) in enumerate(items):
        frame = joints.get(str(image["frame_idx"].int()))
        hand_type.append(ann["hand_type"].str())
        x, y, w, h = ann["bbox"].array(4)
        boxes[t, :] = (x, y, x + w, y + h)  # one box around the hands in view
        if frame is None:
            continue
        world = frame["world_coord"].array(126).reshape(42, 3)
        ok = _joint_valid(ann["joint_valid"])
        if frame.has("joint_valid"):
            ok &= _joint_valid(frame["joint_valid"])
        ok &= ~np.all(world == 1.0, axis=1)  # the dataset's marker of an invalid joint
        kp[t] = (world / 1000.0 - campos) @ R.T
        valid[t] = ok
        labelled[t] = True
    keypoints3d = interhand_to_ours(kp, axis=1)
    joint_valid = interhand_to_ours(valid[..., None], axis=1)[..., 0]
    shows = np.array([[ht in ("right", "interacting"), ht in ("left", "interacting")] for ht in hand_type])
    joint_valid &= shows[:, :, None]
    hand_valid = joint_valid.any(-1)

    params, params_valid, vertices = None, None, None
    if mano is not None:
        params, params_valid = _mano_params(items, mano, R, campos, hand_model)
        vertices = _vertex_function(params, hand_model)
    images = [root / "images" / split / image["file_name"].str() for image, _ in items]
    first = items[0][0]
    width, height = first.get("width"), first.get("height")
    return SequenceAnnotations(
        name=name, image_paths=images, K=np.broadcast_to(K, (n, 3, 3)).copy(),
        image_size=(width.int() if width is not None else 334, height.int() if height is not None else 512),
        keypoints3d=keypoints3d, joint_valid=joint_valid, hand_valid=hand_valid, labelled=labelled, boxes=boxes,
        params=params, params_valid=params_valid, vertices=vertices,
        vertices_valid=None if params_valid is None else params_valid.copy())


def _mano_params(items: list[tuple[Field, Field]], mano: Field, R: np.ndarray, campos: np.ndarray, hand_model):
    """MANO parameters in the camera frame with MANO's mean pose added; [n, 2] validity. ``mano``: the capture's
    entries of the MANO_NeuralAnnot file."""
    n = len(items)
    params = {"betas": np.zeros((n, 2, 10)), "global_orient": np.zeros((n, 2, 3)), "hand_pose": np.zeros((n, 2, 45)),
              "transl": np.zeros((n, 2, 3))}
    valid = np.zeros((n, 2), bool)
    means = [layer.hands_mean.double().numpy() for layer in hand_model.sides]
    for t, (image, _) in enumerate(items):
        frame = mano.get(str(image["frame_idx"].int()))
        if frame is None or not frame.value:
            continue
        for h, side in enumerate(("right", "left")):
            entry = frame.get(side)
            if entry is None or not entry.value:
                continue
            pose = entry["pose"].array(48)
            params["global_orient"][t, h] = pose[:3]
            params["hand_pose"][t, h] = pose[3:] + means[h]
            params["betas"][t, h] = entry["shape"].array(10)
            params["transl"][t, h] = entry["trans"].array(3) - campos
            valid[t, h] = True
    roots = _root_joints(hand_model, params["betas"])
    params = rotate_params(params, R, roots)
    return {k: v.astype(np.float32) for k, v in params.items()}, valid


def _vertex_function(params: dict[str, np.ndarray], hand_model):
    def vertices(idx: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = hand_model(*(torch.as_tensor(params[k][idx]) for k in ("betas", "global_orient", "hand_pose",
                                                                          "transl")))
        return out.vertices.numpy()

    return vertices


class InterHandWindows(WindowDataset):
    """T-frame windows of InterHand2.6M (30 fps) ``split`` at ``root``; see :func:`load_interhand_sequences` and
    :class:`WindowDataset`."""

    def __init__(self, root: str | Path, split: str, hand_model, window: int = 10, stride: int | None = None,
                 crop_size: int = 256, augmentation: Augmentation | None = None, margin: float = 1.3,
                 hand_types: tuple[str, ...] = ("interacting",)) -> None:
        super().__init__(load_interhand_sequences(root, split, hand_model, hand_types), hand_model, window=window,
                         stride=stride, crop_size=crop_size, augmentation=augmentation, margin=margin)
