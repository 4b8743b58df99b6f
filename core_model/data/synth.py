"""The rendered synthetic interacting-hand benchmark (``interhand synth``): generation and on-disk layout.

Each sequence shows two interacting hands for L frames at 30 fps (:mod:`core_model.data.motion`), with a
skin tone, lights and a procedural background (:mod:`core_model.data.appearance`), rendered offscreen by VTK
(:mod:`core_model.data.renderer`). Sequence ``i`` of split ``s`` draws everything from
``numpy.random.SeedSequence(entropy=seed, spawn_key=(SPLIT_KEYS[s], i))``: deterministic per seed, and the test
split (key 1) never uses a random stream of the train split (key 0), whatever the seed and sequence count.

On-disk layout (units: metres; camera: OpenCV axes, pinhole ``K``; hand axis 0 = right, 1 = left; keypoints in
our order, 0 wrist, 1-4 thumb, 5-8 index, 9-12 middle, 13-16 ring, 17-20 pinky)::

    OUT/
      dataset.json            format "interhand-synth", version, split, seed, size, frames, fps, hand_model,
                              num_vertices, sequence names (written last: a complete set has it)
      seq_000000/             one directory per sequence, renamed into place when complete
        rgb/000000.jpg ...    S x S RGB, JPEG quality 92
        labels/000000.png ... S x S uint8 part labels: 0 background, 1 right hand, 2 left hand,
                              3 right forearm, 4 left forearm (per-hand masks are labels == 1 / == 2)
        alpha/000000.png ...  S x S uint8 anti-aliased matte of hands and forearms (version 2): lets a
                              loader put the rendered hands over other backgrounds without a halo
        annotations.npz       betas [L,2,10], global_orient [L,2,3], hand_pose [L,2,45], transl [L,2,3]
                              (MANO-layout parameters of the hand model named in meta.json, camera frame),
                              articulation [L,2,5,3,3] anatomical degrees, keypoints3d [L,2,21,3],
                              keypoints2d [L,2,21,2] pixels, visibility [L,2,21] bool, boxes [L,2,4]
                              (x0, y0, x1, y1 pixels of the projected hand vertices, amodal),
                              K [3,3], image_size [2] (width, height)
        vertices.npy          float32 [L,2,V,3] camera frame (memory-mappable)
        meta.json             seed, spawn key, interaction, hand model, skin tone, lights, keyframe interval

A keypoint is visible when it projects into the image onto its own hand's pixels, and lies at most 15 mm (the
wrist 25 mm: keypoints are joint centres under the skin) behind the rendered surface there.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core_model.data.appearance import composite, hand_regions, sample_background, sample_lighting, sample_skin
from core_model.data.camera import project
from core_model.data.motion import FPS, HandMotion, synthesize_motion
from core_model.data.renderer import HandRenderer
from core_model.fileio import atomic_path
from core_model.handmodel.layer import HandModel

log = logging.getLogger(__name__)

FORMAT = "interhand-synth"
VERSION = 2  # 2: alpha/ mattes
SPLIT_KEYS = {"train": 0, "test": 1}
JPEG_QUALITY = 92
VISIBILITY_TOLERANCE = 0.015
WRIST_VISIBILITY_TOLERANCE = 0.025


def sequence_name(index: int) -> str:
    return f"seq_{index:06d}"


def sequence_seed(seed: int, split: str, index: int) -> np.random.SeedSequence:
    """The random stream of sequence ``index`` of ``split``; train and test streams never coincide."""
    if split not in SPLIT_KEYS:
        raise ValueError(f"split: expected one of {sorted(SPLIT_KEYS)}, got {split!r}")
    if seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed}")
    return np.random.SeedSequence(entropy=seed, spawn_key=(SPLIT_KEYS[split], index))


@dataclasses.dataclass
class SynthSequence:
    """One generated sequence in memory. images [L, S, S, 3] uint8; labels [L, S, S] uint8; the rest as in the
    module docstring (annotations.npz fields), plus ``meta`` (JSON-able)."""

    images: np.ndarray
    labels: np.ndarray
    alpha: np.ndarray
    motion: HandMotion
    keypoints2d: np.ndarray
    visibility: np.ndarray
    boxes: np.ndarray
    K: np.ndarray
    meta: dict


def _forearms(model: HandModel, motion: HandMotion) -> list[np.ndarray]:
    """Forearm stump vertices per hand, [L, Nf, 3], moved rigidly with each hand's root."""
    from scipy.spatial.transform import Rotation

    with torch.no_grad():
        rest = model(torch.as_tensor(motion.betas[0]), torch.zeros(2, 3), torch.zeros(2, 45), torch.zeros(2, 3))
    roots = rest.joints[:, 0].double().numpy()
    out = []
    for h, layer in enumerate(model.sides):
        local = hand_regions(layer).forearm_vertices - roots[h]
        rot = Rotation.from_rotvec(motion.global_orient[:, h].astype(np.float64)).as_matrix()
        out.append(np.einsum("lij,nj->lni", rot, local) + (roots[h] + motion.transl[:, h])[:, None, :])
    return out


def generate_sequence(model: HandModel, seed_sequence: np.random.SeedSequence, frames: int, size: int,
                      renderer: HandRenderer | None = None, interaction: str | None = None) -> SynthSequence:
    """Synthesise and render one sequence. Pass a ``renderer`` of the same ``size`` to reuse it across sequences."""
    if frames < 1:
        raise ValueError(f"frames: expected at least 1, got {frames}")
    if size < 32:
        raise ValueError(f"size: expected at least 32 pixels, got {size}")
    rng = np.random.default_rng(seed_sequence)
    focal = size * rng.uniform(1.0, 1.7)
    K = np.array([[focal, 0, (size - 1) / 2], [0, focal, (size - 1) / 2], [0, 0, 1]], dtype=np.float64)
    motion = synthesize_motion(model, rng, frames, focal, size, interaction)
    skin = sample_skin(rng, model.sides)
    lighting = sample_lighting(rng)
    background = sample_background(rng, size)
    shadow_offset = -lighting.key_direction[:2] * size * rng.uniform(0.02, 0.06)
    shadow_strength = rng.uniform(0.15, 0.45)
    forearms = _forearms(model, motion)
    faces = [model.right.data.faces, model.left.data.faces,
             hand_regions(model.right).forearm_faces, hand_regions(model.left).forearm_faces]

    own = renderer is None
    if own:
        renderer = HandRenderer(size, faces)
    elif renderer.size != size:
        raise ValueError(f"renderer: its size {renderer.size} differs from size {size}")
    images = np.zeros((frames, size, size, 3), np.uint8)
    labels = np.zeros((frames, size, size), np.uint8)
    alpha = np.zeros((frames, size, size), np.uint8)
    keypoints2d = project(motion.keypoints.astype(np.float64), K).astype(np.float32)
    visibility = np.zeros((frames, 2, 21), bool)
    try:
        renderer.set_camera(focal)
        renderer.set_appearance([skin.hands[0], skin.hands[1], skin.forearms[0], skin.forearms[1]], skin.specular,
                                skin.specular_power, skin.ambient, lighting)
        for t in range(frames):
            frame = renderer.render([motion.vertices[t, 0], motion.vertices[t, 1], forearms[0][t], forearms[1][t]])
            images[t] = composite(frame.rgb, frame.alpha, background, rng, shadow_offset, shadow_strength)
            labels[t] = frame.labels
            alpha[t] = np.clip(frame.alpha * 255 + 0.5, 0, 255).astype(np.uint8)
            visibility[t] = _visibility(keypoints2d[t], motion.keypoints[t], frame.labels, frame.depth)
    finally:
        if own:
            renderer.close()
    verts2d = project(motion.vertices.astype(np.float64), K)
    boxes = np.concatenate([verts2d.min(2), verts2d.max(2)], -1).astype(np.float32)
    meta = {
        "entropy": int(seed_sequence.entropy), "spawn_key": [int(k) for k in seed_sequence.spawn_key],
        "interaction": motion.interaction, "hand_model": model.name, "num_vertices": model.num_vertices,
        "keyframe_interval_s": round(float(motion.keyframe_interval), 4),
        "skin_rgb": [round(float(c), 4) for c in skin.hands[0].mean(0)],
        "key_light": [round(float(c), 4) for c in lighting.key_direction], "focal": focal, "fps": FPS,
    }
    return SynthSequence(images=images, labels=labels, alpha=alpha, motion=motion, keypoints2d=keypoints2d,
                         visibility=visibility,
                         boxes=boxes, K=K, meta=meta)


def _visibility(kp2d: np.ndarray, kp3d: np.ndarray, labels: np.ndarray, depth: np.ndarray) -> np.ndarray:
    size = labels.shape[0]
    px = np.round(kp2d).astype(np.int64)
    inside = (px >= 0).all(-1) & (px < size).all(-1)
    pxc = np.clip(px, 0, size - 1)
    label_at = labels[pxc[..., 1], pxc[..., 0]]
    depth_at = depth[pxc[..., 1], pxc[..., 0]]
    own = label_at == np.array([1, 2])[:, None]
    tol = np.full(21, VISIBILITY_TOLERANCE)
    tol[0] = WRIST_VISIBILITY_TOLERANCE
    return inside & own & (kp3d[..., 2] <= depth_at + tol)


def write_sequence(sequence: SynthSequence, directory: Path) -> Path:
    """Write one sequence into ``directory`` (built beside it and renamed into place when complete)."""
    directory = Path(directory)
    tmp = directory.parent / f".{directory.name}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "rgb").mkdir(parents=True)
    (tmp / "labels").mkdir()
    (tmp / "alpha").mkdir()
    for t, (image, label, alpha) in enumerate(zip(sequence.images, sequence.labels, sequence.alpha)):
        Image.fromarray(image).save(tmp / "rgb" / f"{t:06d}.jpg", quality=JPEG_QUALITY)
        Image.fromarray(label).save(tmp / "labels" / f"{t:06d}.png", optimize=False, compress_level=1)
        Image.fromarray(alpha).save(tmp / "alpha" / f"{t:06d}.png", optimize=False, compress_level=1)
    m = sequence.motion
    size = sequence.images.shape[1]
    np.savez(tmp / "annotations.npz", betas=m.betas, global_orient=m.global_orient, hand_pose=m.hand_pose,
             transl=m.transl, articulation=m.articulation, keypoints3d=m.keypoints.astype(np.float32),
             keypoints2d=sequence.keypoints2d, visibility=sequence.visibility, boxes=sequence.boxes,
             K=sequence.K, image_size=np.array([size, size]))
    np.save(tmp / "vertices.npy", m.vertices.astype(np.float32))
    (tmp / "meta.json").write_text(json.dumps(sequence.meta, indent=1))
    if directory.exists():
        shutil.rmtree(directory)
    os.replace(tmp, directory)
    return directory


def _generate_range(args: tuple) -> list[float]:
    """Worker: generate the sequences ``indices`` with one model and one renderer; seconds per sequence."""
    out, indices, frames, size, seed, split, hand_model, interactions = args
    from core_model.handmodel.registry import load_hand_model

    torch.set_num_threads(1)
    model = load_hand_model(hand_model)
    faces = [model.right.data.faces, model.left.data.faces,
             hand_regions(model.right).forearm_faces, hand_regions(model.left).forearm_faces]
    times = []
    with HandRenderer(size, faces) as renderer:
        for i in indices:
            start = time.perf_counter()
            interaction = interactions[i % len(interactions)] if interactions else None
            seq = generate_sequence(model, sequence_seed(seed, split, i), frames, size, renderer, interaction)
            write_sequence(seq, Path(out) / sequence_name(i))
            times.append(time.perf_counter() - start)
    return times


def generate_dataset(out: str | Path, sequences: int, frames: int, size: int, seed: int, split: str = "train",
                     hand_model: str = "auto", workers: int = 1,
                     progress: Callable[[int, int], None] | None = None,
                     interactions: tuple[str, ...] = ()) -> Path:
    """Generate ``sequences`` sequences into ``out`` (existing complete sequences of the same settings are kept,
    so an interrupted run resumes); returns the path of ``dataset.json``. ``interactions`` (names of
    :data:`core_model.data.motion.INTERACTIONS`) restricts the set to those, sequence ``i`` taking the
    ``i % len``-th: a set aimed at the interactions a model gets wrong; empty draws from the whole prior."""
    if sequences < 1:
        raise ValueError(f"sequences: expected at least 1, got {sequences}")
    if workers < 1:
        raise ValueError(f"workers: expected at least 1, got {workers}")
    sequence_seed(seed, split, 0)  # validates split and seed
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    index_path = out / "dataset.json"
    from core_model.data.motion import INTERACTIONS

    unknown = sorted(set(interactions) - set(INTERACTIONS))
    if unknown:
        raise ValueError(f"interactions: {unknown} are not among {sorted(INTERACTIONS)}")
    settings = {"split": split, "seed": seed, "size": size, "frames": frames,
                **({"interactions": list(interactions)} if interactions else {})}
    if index_path.exists():
        old = json.loads(index_path.read_text())
        if any(old.get(k) != settings.get(k) for k in {*settings, "interactions"}):
            raise ValueError(f"out: {out} holds a synthetic set made with other settings "
                             f"({ {k: old.get(k) for k in settings} }); choose another folder")
    from core_model.handmodel.registry import load_hand_model

    model = load_hand_model(hand_model)
    todo = [i for i in range(sequences) if not (out / sequence_name(i) / "meta.json").exists()]
    done = sequences - len(todo)
    if todo:
        batch = max(1, min(8, len(todo) // (4 * workers)))
        jobs = [(out, todo[k:k + batch], frames, size, seed, split, hand_model, tuple(interactions))
                for k in range(0, len(todo), batch)]
        if workers == 1:
            results = map(_generate_range, jobs)
        else:
            import multiprocessing

            pool = multiprocessing.get_context("spawn").Pool(min(workers, len(jobs)))
            results = pool.imap_unordered(_generate_range, jobs)
        try:
            for times in results:
                done += len(times)
                if progress:
                    progress(done, sequences)
        finally:
            if workers > 1:
                pool.close()
                pool.join()
    index = {"format": FORMAT, "version": VERSION, **settings, "fps": FPS, "sequences": sequences,
             "hand_model": model.name, "num_vertices": model.num_vertices,
             "sequence_names": [sequence_name(i) for i in range(sequences)],
             "keypoint_order": "wrist, thumb1-4, index1-4, middle1-4, ring1-4, pinky1-4 (base to tip)",
             "units": "metres", "camera": "OpenCV (x right, y down, z forward), pinhole K"}
    with atomic_path(index_path) as tmp:
        tmp.write_text(json.dumps(index, indent=1))
    return index_path
