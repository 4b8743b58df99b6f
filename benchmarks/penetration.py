"""Interpenetration detector: agreement with trimesh/Embree and time per frame of each back end, side by side.

    python benchmarks/penetration.py [--frames 1000] [--batch 320] [--seed 0] [--reference numpy]

Frames are two OpenHand hands in random natural poses and orientations, placed so that a random vertex of the
left hand lands within a few millimetres of a random vertex of the right hand: contact with overlap. The
reference is ``trimesh.Trimesh.contains`` (ray parity through Embree), rebuilt every frame as a deforming mesh
needs. Times are per frame, both directions (right in left and left in right), mesh rebuild included.
``--reference numpy``: the numpy back end (depth=none) is the reference instead, and the distances of disagreeing
vertices are left out: on a machine without trimesh's ray back ends (the GPU machine), where the numpy back end's
agreement with trimesh/Embree is the one recorded in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import roma
import torch

from core_model.geometry.interpenetration import HandMeshes, detect_interpenetration
from core_model.handmodel.poses import articulation_to_pose, rest_frames, sample_articulations
from core_model.handmodel.registry import load_hand_model


def contact_frames(model, count: int, seed: int) -> torch.Tensor:
    """[count, 2, V, 3] float32 vertices of two hands in contact and overlapping."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    poses = [articulation_to_pose(torch.as_tensor(sample_articulations(rng, count), dtype=torch.float32),
                                  rest_frames(layer)) for layer in model.sides]
    orient = roma.rotmat_to_rotvec(roma.random_rotmat((count, 2), dtype=torch.float32))
    betas = torch.as_tensor(rng.normal(0, 1, (count, 2, 10)), dtype=torch.float32)
    with torch.no_grad():
        vertices = model(betas, orient, torch.stack(poses, 1), torch.zeros(count, 2, 3)).vertices.clone()
    i, j = rng.integers(0, vertices.shape[2], size=(2, count))
    shift = vertices[np.arange(count), 0, i] - vertices[np.arange(count), 1, j]
    shift += torch.as_tensor(rng.normal(0, 0.005, (count, 3)), dtype=torch.float32)
    vertices[:, 1] += shift[:, None]
    return vertices


def reference(vertices: np.ndarray, faces) -> tuple[np.ndarray, float]:
    """trimesh/Embree inside masks [N, 2, V] and seconds per frame."""
    import trimesh

    inside = np.zeros(vertices.shape[:-1], dtype=bool)
    start = time.perf_counter()
    for k, frame in enumerate(vertices):
        for h in range(2):
            inside[k, h] = trimesh.Trimesh(frame[1 - h], faces[1 - h], process=False).contains(frame[h])
    return inside, (time.perf_counter() - start) / len(vertices)


def per_frame(vertices: np.ndarray, meshes: HandMeshes, **kwargs):
    """The viewer's use: one frame per call. Returns (inside [N, 2, V], depth, seconds per frame)."""
    inside = np.zeros(vertices.shape[:-1], dtype=bool)
    depth = np.zeros(vertices.shape[:-1])
    start = time.perf_counter()
    for k in range(len(vertices)):
        result = detect_interpenetration(vertices[k:k + 1], meshes, backend="numpy", **kwargs)
        inside[k], depth[k] = result.inside[0], result.depth[0]
    return inside, depth, (time.perf_counter() - start) / len(vertices)


def batched(vertices: torch.Tensor, meshes: HandMeshes, batch: int, device: torch.device, **kwargs):
    """The training use: batches of frames on ``device``. Returns (inside, depth, seconds per frame at full
    batches)."""
    inside, depth, seconds, timed = [], [], 0.0, 0
    for start in range(0, len(vertices), batch):
        chunk = vertices[start:start + batch].to(device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        tic = time.perf_counter()
        result = detect_interpenetration(chunk, meshes, backend="torch", **kwargs)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if len(chunk) == batch:
            seconds, timed = seconds + time.perf_counter() - tic, timed + batch
        inside.append(result.inside.cpu())
        depth.append(result.depth.cpu())
    return torch.cat(inside).numpy(), torch.cat(depth).double().numpy(), seconds / max(timed, 1)


def surface_distance(vertices: np.ndarray, faces, where: np.ndarray) -> np.ndarray:
    """Distance (metres) of the vertices at ``where`` (rows of frame, hand, vertex) to the other hand."""
    import trimesh

    out = []
    for k, h, v in where:
        mesh = trimesh.Trimesh(vertices[k, 1 - h], faces[1 - h], process=False)
        out.append(trimesh.proximity.closest_point(mesh, vertices[k, h, v][None])[1][0])
    return np.array(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=320)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpu-threads", type=int, nargs="+", default=[torch.get_num_threads(), 1],
                        help="torch CPU thread counts to time the batched back end with")
    parser.add_argument("--reference", choices=("trimesh", "numpy"), default="trimesh",
                        help="what the back ends are compared with (numpy: where trimesh cannot cast rays)")
    args = parser.parse_args()

    model = load_hand_model("openhand")
    meshes = HandMeshes.from_model(model)
    faces = (model.right.data.closed_faces, model.left.data.closed_faces)
    vertices = contact_frames(model, args.frames, args.seed)
    v64 = vertices.double().numpy()
    print(f"{args.frames} frames, {model.name} ({vertices.shape[2]} vertices, {len(faces[0])} faces per hand); "
          f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} torch threads")

    rows = []
    if args.reference == "trimesh":
        ref, ref_time = reference(v64, faces)
        rows.append(("trimesh/Embree contains (reference)", "cpu", "1", ref_time, ref, None))
    for depth in ("none", "vertices", "surface"):
        inside, _, seconds = per_frame(v64, meshes, fill_rule="evenodd", depth=depth)
        rows.append((f"numpy per frame, depth={depth}" + (" (reference)" if args.reference == "numpy" and
                                                          depth == "none" else ""), "cpu", "1", seconds, inside, None))
        if args.reference == "numpy" and depth == "none":
            ref = inside
    runs = [(torch.device("cpu"), n) for n in dict.fromkeys(args.cpu_threads)]
    runs += [(torch.device("cuda"), None)] if torch.cuda.is_available() else []
    default_threads = torch.get_num_threads()
    for device, threads in runs:
        torch.set_num_threads(threads or default_threads)
        batched(vertices[:8], meshes, args.batch, device)                          # warm-up
        for depth in ("none", "surface"):
            inside, _, seconds = batched(vertices, meshes, args.batch, device, fill_rule="evenodd", depth=depth)
            where = f"{device}" + (f", {threads} threads" if threads else "")
            rows.append((f"torch batched, depth={depth}", where, str(args.batch), seconds, inside, None))
    torch.set_num_threads(default_threads)

    total = ref.size
    print(f"\nreference: {ref.mean() * 100:.2f} % of vertices inside the other hand; frames with any: "
          f"{ref.any(axis=(1, 2)).mean() * 100:.1f} %\n")
    print("| back end | device | batch | ms / frame (both directions) | agreement with reference | "
          "disagreeing vertices | farthest from a surface (mm) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, device, batch, seconds, inside, _ in rows:
        wrong = np.argwhere(inside != ref)
        if args.reference == "numpy":
            far = float("nan")
        else:
            far = surface_distance(v64, faces, wrong).max() * 1000 if len(wrong) else 0.0
        print(f"| {name} | {device} | {batch} | {seconds * 1000:.3f} | {(1 - len(wrong) / total) * 100:.4f} % | "
              f"{len(wrong)} | {far:.5f} |")
    nonzero, _, _ = per_frame(v64[:200], meshes, fill_rule="nonzero")
    diff = int((nonzero != per_frame(v64[:200], meshes, fill_rule="evenodd")[0]).sum())
    print(f"\nfill rule: nonzero and even-odd differ on {diff} of {nonzero.size} vertices in the first "
          f"{min(200, len(v64))} frames (inside regions where the other hand overlaps itself)")


if __name__ == "__main__":
    main()
