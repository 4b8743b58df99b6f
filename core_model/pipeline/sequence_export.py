"""Export of a reconstructed sequence: one mesh file per frame (OBJ, PLY, GLB through ``core_model.export``) and
one animated glTF (GLB) of the whole sequence.

Why per-frame nodes shown one at a time: every standard glTF viewer (three.js, Babylon.js, Blender, Windows 3D
Viewer, gltf-viewer) plays node scale animations with STEP interpolation, while morph targets are capped or
slow in some of them and skinning would need the hand model's rig re-expressed in glTF. Each frame's two hands
are mesh nodes whose scale is 1 during their frame and 0 otherwise. The root node turns the camera axes of the
result (x right, y down, z forward) into glTF's (y up, z toward the viewer): a half turn about x.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core_model.export import FORMATS, HAND_NAMES, _rgba, export_hand_pair
from core_model.fileio import atomic_path
from core_model.render import HAND_COLOURS, PENETRATION_COLOUR
from core_model.results import Reconstruction


def parse_frames(text: str | None, num_frames: int) -> range:
    """``"a:b"`` (Python slice, either end optional, negatives from the end), ``"a"`` one frame, None all."""
    if text is None or text.strip() in ("", ":"):
        return range(num_frames)
    try:
        if ":" in text:
            a, b = (int(v) if v.strip() else None for v in text.split(":", 1))
            picked = range(num_frames)[slice(a, b)]
        else:
            index = int(text)
            picked = range(num_frames)[index: index + 1 if index != -1 else None]
    except ValueError:
        raise ValueError(f"--frames: expected a:b or a frame index, got {text!r}") from None
    if not len(picked):
        raise ValueError(f"--frames: {text!r} selects no frame of the {num_frames} in the result")
    return picked


def exportable(result: Reconstruction, frame: int) -> bool:
    """A frame has meshes to export when both hands are valid and finite."""
    return bool(result.valid[frame].all() and np.isfinite(result.vertices[frame]).all())


def export_frames(result: Reconstruction, faces: Sequence[np.ndarray], out_dir: str | os.PathLike[str],
                  file_format: str, frames: range) -> list[Path]:
    """One file per frame with both hands (``frame_000123.obj``); frames without both hands are skipped."""
    if file_format not in FORMATS:
        raise ValueError(f"--format: expected one of {FORMATS}, got {file_format!r}")
    out = Path(out_dir)
    digits = max(6, len(str(result.num_frames)))
    written = []
    for t in frames:
        if not exportable(result, t):
            continue
        path = out / f"frame_{t:0{digits}d}.{file_format}"
        written.append(export_hand_pair(result.vertices[t], faces, path, file_format, inside=result.inside[t]))
    return written


def _pad4(data: bytes, fill: bytes = b"\x00") -> bytes:
    return data + fill * (-len(data) % 4)


def export_animation(result: Reconstruction, faces: Sequence[np.ndarray], path: str | os.PathLike[str],
                     frames: range | None = None) -> Path:
    """The sequence as one animated GLB; vertex colours per hand, penetrating vertices red; frames without both
    hands are left out (the previous frame's hands stay hidden too, so a gap shows as a gap)."""
    if len(faces) != 2:
        raise ValueError(f"faces: expected (right, left) face arrays, got {len(faces)}")
    frames = frames if frames is not None else range(result.num_frames)
    picked = [t for t in frames if exportable(result, t)]
    if not picked:
        raise ValueError("result: no frame in the selection has both hands reconstructed; nothing to animate")
    fps = float(result.meta.fps)
    blob = bytearray()
    views: list[dict] = []
    accessors: list[dict] = []

    def add(data: np.ndarray, component: int, kind: str, target: int | None = None, minmax: bool = False,
            normalized: bool = False) -> int:
        raw = np.ascontiguousarray(data).tobytes()
        view = {"buffer": 0, "byteOffset": len(blob), "byteLength": len(raw)}
        if target is not None:
            view["target"] = target
        blob.extend(_pad4(raw))
        views.append(view)
        acc = {"bufferView": len(views) - 1, "componentType": component, "count": len(data), "type": kind}
        if normalized:
            acc["normalized"] = True
        if minmax:
            acc["min"] = [float(v) for v in np.min(data, axis=0).reshape(-1)]
            acc["max"] = [float(v) for v in np.max(data, axis=0).reshape(-1)]
        accessors.append(acc)
        return len(accessors) - 1

    float_, uint32, ubyte = 5126, 5125, 5121
    index_acc = [add(np.asarray(f, np.uint32).reshape(-1), uint32, "SCALAR", 34963, minmax=True) for f in faces]
    materials = [{"name": name, "pbrMetallicRoughness": {"baseColorFactor": [1, 1, 1, 1], "metallicFactor": 0.0,
                                                           "roughnessFactor": 0.8}, "doubleSided": True}
                 for name in HAND_NAMES]
    colours = [_rgba(c) for c in HAND_COLOURS]
    red = _rgba(PENETRATION_COLOUR)
    root = {"name": "hands", "rotation": [1.0, 0.0, 0.0, 0.0], "children": []}  # camera axes -> glTF axes
    meshes, nodes, channels, samplers = [], [root], [], []
    for order, t in enumerate(picked):
        for hand in range(2):
            verts = result.vertices[t, hand].astype(np.float32)
            rgba = np.tile(colours[hand], (len(verts), 1))
            rgba[np.asarray(result.inside[t, hand], bool)] = red
            pos = add(verts, float_, "VEC3", 34962, minmax=True)
            col = add(rgba.astype(np.uint8), ubyte, "VEC4", 34962, normalized=True)
            meshes.append({"name": f"{HAND_NAMES[hand]}_{t}", "primitives": [
                {"attributes": {"POSITION": pos, "COLOR_0": col}, "indices": index_acc[hand], "material": hand}]})
            visible = 1.0 if order == 0 else 0.0
            nodes.append({"name": f"{HAND_NAMES[hand]}_{t}", "mesh": len(meshes) - 1,
                          "scale": [visible] * 3})
            nodes[0]["children"].append(len(nodes) - 1)
            times, scales = _visibility_keys(picked, order, fps)
            samplers.append({"input": add(times, float_, "SCALAR", minmax=True),
                             "output": add(scales, float_, "VEC3"), "interpolation": "STEP"})
            channels.append({"sampler": len(samplers) - 1, "target": {"node": len(nodes) - 1, "path": "scale"}})
    gltf = {
        "asset": {"version": "2.0", "generator": "InterHand Studio"},
        "scene": 0, "scenes": [{"name": "reconstruction", "nodes": [0]}],
        "nodes": nodes, "meshes": meshes, "materials": materials,
        "accessors": accessors, "bufferViews": views, "buffers": [{"byteLength": len(blob)}],
        "animations": [{"name": "sequence", "samplers": samplers, "channels": channels}],
        "extras": {"fps": fps, "frames": [int(t) for t in picked], "hand_model": result.meta.hand_model},
    }
    chunk_json = _pad4(json.dumps(gltf, separators=(",", ":")).encode(), b" ")
    chunk_bin = bytes(blob)
    total = 12 + 8 + len(chunk_json) + 8 + len(chunk_bin)
    data = (struct.pack("<4sII", b"glTF", 2, total) + struct.pack("<I4s", len(chunk_json), b"JSON") + chunk_json
            + struct.pack("<I4s", len(chunk_bin), b"BIN\x00") + chunk_bin)
    target = Path(path)
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return target


def _visibility_keys(picked: list[int], order: int, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Key times (seconds) and scales of the node of ``picked[order]``: shown from its frame's time until the next
    exported frame's (or one frame later if the next frame is not exported), hidden otherwise."""
    t = picked[order]
    start = t / fps
    stop = (picked[order + 1] if order + 1 < len(picked) and picked[order + 1] == t + 1 else t + 1) / fps
    times, values = [start, stop], [1.0, 0.0]
    if start > picked[0] / fps:
        times.insert(0, picked[0] / fps)
        values.insert(0, 0.0)
    scales = np.repeat(np.array(values, np.float32)[:, None], 3, axis=1)
    return np.array(times, np.float32), scales
