"""Test-time refinement (issue 11): accuracy on the synthetic test split, plausibility and jitter on real clips,
and time per frame. Prints markdown tables.

    python benchmarks/refine.py synth --data DIR [--checkpoint PATH] [--start perturbed|network|both]
    python benchmarks/refine.py real [--media ../shared/real-media] [--checkpoint PATH] [--overlay DIR]
    python benchmarks/refine.py timing --data DIR [--device cpu|cuda] [--threads N]

Synthetic: the detector's errors are simulated from the ground truth (pixel noise; occluded fingers, from the
renderer's visibility, dropped or misplaced; hands missed, swapped, or merged into one blob, in bursts).
Refinement starts either from the network's output (the shipped model unless --checkpoint) or from the ground truth
with network-like errors (pose noise, a shape error, wrist offsets, frame-to-frame jitter), so that its own
effect can be measured without a trained model.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core_model import metrics
from core_model.data.detector_sim import DetectorErrors, simulate_detections
from core_model.geometry.alignment import PROTOCOLS
from core_model.geometry.hand_box import hand_size
from core_model.geometry.interpenetration import detect_interpenetration
from core_model.handmodel.keypoints import BONES
from core_model.refine import RefineConfig, RefineInput, Refiner

# ------------------------------------------------------------------------------------------ network-like start


@dataclasses.dataclass
class NetworkErrors:
    """Errors of a network-like starting point: a per-sequence bias plus per-frame jitter."""

    pose_bias: float = 0.12             # radians per pose dof
    pose_jitter: float = 0.05
    orient_bias: float = 0.08
    orient_jitter: float = 0.03
    betas: float = 0.5
    root_bias: tuple[float, float, float] = (0.01, 0.01, 0.04)   # metres (x, y, depth)
    root_jitter: tuple[float, float, float] = (0.003, 0.003, 0.01)
    rel_bias: float = 0.015
    rel_jitter: float = 0.005


def perturb(gt: dict[str, np.ndarray], rng: np.random.Generator, err: NetworkErrors) -> dict[str, np.ndarray]:
    T = len(gt["betas"])

    def noisy(x, bias, jitter):
        return x + rng.normal(0, 1, x.shape[1:]) * bias + rng.normal(0, 1, x.shape) * jitter

    roots = gt["roots"] + rng.normal(0, 1, (2, 3)) * err.root_bias + rng.normal(0, 1, (T, 2, 3)) * err.root_jitter
    rel = gt["roots"][:, 1] - gt["roots"][:, 0]
    return {"betas": gt["betas"] + rng.normal(0, err.betas, (1, 2, 10)),
            "global_orient": noisy(gt["global_orient"], err.orient_bias, err.orient_jitter),
            "hand_pose": noisy(gt["hand_pose"], err.pose_bias, err.pose_jitter),
            "roots": roots, "rel_transl": noisy(rel, err.rel_bias, err.rel_jitter)}


# ------------------------------------------------------------------------------------------ synthetic split


def load_sequences(root: Path) -> list[dict[str, np.ndarray]]:
    import json

    index = json.loads((root / "dataset.json").read_text())
    out = []
    for name in index["sequence_names"]:
        with np.load(root / name / "annotations.npz") as npz:
            ann = {k: npz[k] for k in npz.files}
        ann["vertices"] = np.load(root / name / "vertices.npy")
        ann["roots"] = ann["keypoints3d"][:, :, 0].astype(np.float64)
        ann["name"] = name
        boxes = ann["boxes"]                             # [T, 2, 4] x0 y0 x1 y1
        lo, hi = boxes[..., :2].min(1), boxes[..., 2:].max(1)
        ann["crop"] = 1.3 * (hi - lo).max(-1)
        centre = (lo + hi) / 2
        ann["bbox"] = np.concatenate([centre - ann["crop"][:, None] / 2, np.repeat(ann["crop"][:, None], 2, 1)], 1)
        out.append(ann)
    return out


def network_start(seqs, model, device, dets) -> list[dict[str, np.ndarray]]:
    """The network's output on each sequence (non-overlapping windows; crops around the ground-truth boxes),
    converted to camera-frame wrists through its weak-perspective cameras as the pipeline's arrays would be. A
    landmark-guided network sees the same simulated detections ``dets`` as the refinement."""
    from PIL import Image

    from core_model.network.landmarks import landmark_input
    from core_model.pipeline.region import crop_frame, landmarks_in_crops
    from core_model.refine.camera import fit_weak_perspective, roots_from_weak_perspective

    size, T = model.config.input_size, model.config.frames
    outs = []
    for seq, (det, _) in zip(seqs, dets):
        n = len(seq["betas"])
        landmarks = landmark_input(torch.from_numpy(landmarks_in_crops(det, seq["bbox"]))).to(device)
        frames = [np.asarray(Image.open(seq["path"] / "rgb" / f"{t:06d}.jpg").convert("RGB")) for t in range(n)]
        crops = np.stack([crop_frame(f, b, size) for f, b in zip(frames, seq["bbox"])])
        starts = list(range(0, n - T + 1, T))
        if starts[-1] + T < n:
            starts.append(n - T)
        acc = {}
        for s in starts:
            x = torch.from_numpy(crops[s:s + T]).permute(0, 3, 1, 2).float().div(255)[None].to(device)
            with torch.inference_mode():
                out = model(x, landmarks=landmarks[s:s + T][None] if model.config.landmarks else None)
            for k in ("betas", "global_orient", "hand_pose", "keypoints", "keypoints2d"):
                acc.setdefault(k, np.zeros((n, *out.__dict__[k].shape[2:]), np.float32))[s:s + T] = \
                    getattr(out, k)[0].float().cpu().numpy()
        box = seq["bbox"]
        px = box[:, None, None, :2] + (acc["keypoints2d"] + 1) / 2 * box[:, None, None, 2:3]
        kp = acc["keypoints"].astype(np.float64)
        a, b = fit_weak_perspective(kp - kp[..., :1, :], px)
        roots = roots_from_weak_perspective(a, b, seq["K"])
        outs.append({"betas": acc["betas"], "global_orient": acc["global_orient"], "hand_pose": acc["hand_pose"],
                     "roots": roots, "rel_transl": kp[:, 1, 0] - kp[:, 0, 0]})
    return outs


def to_input(start: dict[str, np.ndarray], seq: dict[str, np.ndarray], det: np.ndarray, score: np.ndarray
             ) -> RefineInput:
    T = len(seq["betas"])

    def t(x, dtype=torch.float32):
        return torch.as_tensor(np.array(x))[None].to(dtype)

    return RefineInput(betas=t(np.broadcast_to(start["betas"], (T, 2, 10))),
                       global_orient=t(start["global_orient"]), hand_pose=t(start["hand_pose"]),
                       roots=t(start["roots"]), rel_transl=t(start["rel_transl"]), det_keypoints2d=t(det),
                       det_score=t(score), K=t(np.broadcast_to(seq["K"], (T, 3, 3))), scale_px=t(seq["crop"]),
                       valid=torch.ones(1, T, 2, dtype=torch.bool), link=torch.ones(1, T - 1, dtype=torch.bool))


def hands_of(refiner: Refiner, params: dict[str, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints and vertices [T, 2, ...] (camera frame) of parameters with wrists at ``roots``."""
    b = params["betas"].float()
    transl = refiner.skeleton.transl(b, params["roots"].float())
    with torch.no_grad():
        out = refiner.hand_model(b, params["global_orient"].float(), params["hand_pose"].float(), transl)
    return out.keypoints.cpu().numpy(), out.vertices.cpu().numpy()


def evaluate(kp, verts, seq, meshes) -> dict[str, float]:
    row = {}
    for proto in PROTOCOLS:
        row[f"MPJPE {proto}"] = metrics.mpjpe(kp, seq["keypoints3d"], proto).mean
        row[f"MPVPE {proto}"] = metrics.mpvpe(verts, seq["vertices"], kp, seq["keypoints3d"], proto).mean
        row[f"Accel_E {proto}"] = metrics.accel_error(kp, seq["keypoints3d"], proto).mean
    pen = detect_interpenetration(verts, meshes, depth="surface", backend="numpy")
    row["MMPD"] = metrics.mmpd(pen.depth).mean
    row["pen. frames %"] = 100 * float(pen.inside.any((-1, -2)).mean())
    return row


def run_synth(args) -> None:
    from core_model.handmodel.registry import load_hand_model

    torch.set_num_threads(args.threads)
    hand_model = load_hand_model("auto")
    seqs = load_sequences(Path(args.data))
    for s in seqs:
        s["path"] = Path(args.data) / s["name"]
    refiner = Refiner(hand_model, config_of(args.set))
    rng = np.random.default_rng(args.seed)
    dets = [simulate_detections(s["keypoints2d"], s["visibility"], s["crop"], rng, DetectorErrors()) for s in seqs]
    starts = {}
    if args.start in ("perturbed", "both"):
        starts["GT + network-like errors"] = [perturb(s, rng, NetworkErrors()) for s in seqs]
    if args.start in ("network", "both"):
        model, note = load_network(args.checkpoint, hand_model)
        print(f"network start: {note}\n")
        label = f"network ({'checkpoint' if args.checkpoint else 'shipped model'})"
        starts[label] = network_start(seqs, model, "cpu", dets)
    missed = np.mean([np.isnan(d).all((-1, -2)).mean() for d, _ in dets])
    dropped = np.mean([np.isnan(d).any(-1).mean() for d, _ in dets])
    occluded = np.mean([(~s["visibility"]).mean() for s in seqs])
    print(f"{len(seqs)} sequences x {len(seqs[0]['betas'])} frames, hand model {hand_model.name}; simulated "
          f"detector: {100 * missed:.1f} % of hand-frames missed, {100 * dropped:.1f} % of landmarks absent "
          f"({100 * occluded:.1f} % occluded in the renders)\n")
    cols = [f"{m} {p}" for m in ("MPJPE", "MPVPE", "Accel_E") for p in PROTOCOLS] + ["MMPD", "pen. frames %"]
    print("| start | result | " + " | ".join(cols) + " |")
    print("|" + " --- |" * (len(cols) + 2))
    for label, start_list in starts.items():
        rows = {"before": [], "refined": []}
        gates = []
        seconds = 0.0
        for seq, start, (det, score) in zip(seqs, start_list, dets):
            data = to_input(start, seq, det, score)
            before = {k: data.__dict__[k][0] for k in ("betas", "global_orient", "hand_pose", "roots")}
            rows["before"].append(evaluate(*hands_of(refiner, before), seq, refiner.meshes))
            result = refiner.refine(data)
            seconds += result.seconds
            gates.append(result.gate[0])
            after = {k: getattr(result, k)[0] for k in ("betas", "global_orient", "hand_pose", "roots")}
            rows["refined"].append(evaluate(*hands_of(refiner, after), seq, refiner.meshes))
        for name, r in rows.items():
            mean = {c: np.mean([x[c] for x in r]) for c in cols}
            print(f"| {label} | {name} | " + " | ".join(f"{mean[c]:.2f}" for c in cols) + " |")
        g = np.concatenate(gates)
        from core_model.refine.gating import REASONS

        counts = ", ".join(f"{REASONS[i]} {100 * np.mean(g == i):.1f} %" for i in range(len(REASONS))
                           if (g == i).any())
        per_frame = 1e3 * seconds / sum(len(s["betas"]) for s in seqs)
        print(f"\n{label}: gating of hand-frames: {counts}; refinement {per_frame:.1f} ms/frame\n")
    print("MPJPE, MPVPE in mm, Accel_E in mm/frame^2, MMPD in mm (right into left), root-aligned per protocol.")


def load_network(checkpoint: str | None, hand_model, device: str = "cpu"):
    """STCNet from ``checkpoint``, else the shipped model (``assets/models``; whatever version is installed).
    (model, a note saying which)."""
    from core_model.network import load_checkpoint
    from core_model.pipeline.models import load_run_model, shipped_checkpoint

    if checkpoint:
        model, _ = load_checkpoint(checkpoint, hand_model, device)
        return model, f"checkpoint {checkpoint}"
    model, preset, sha = load_run_model(None, "auto", torch.device(device))
    note = f"shipped model {shipped_checkpoint()} (preset {preset}, sha256 {sha[:12]})"
    if model.hand_model.name != hand_model.name:
        note += f"; WARNING: trained with {model.hand_model.name}, the refinement here uses {hand_model.name}"
    return model, note


# ------------------------------------------------------------------------------------------ real clips

WHITTAKER_LAMBDAS = (3.0, 10.0, 30.0, 100.0)


def whittaker(px: np.ndarray, ok: np.ndarray, lam: float) -> np.ndarray:
    """px [N, 2, 21, 2] smoothed along time by the Whittaker smoother (argmin |y - x|^2 + lam |D2 y|^2) within
    each run of frames where ``ok`` [N, 2] holds; elsewhere as it is. A reference for the jitter target: how far a
    pure 2D smoother has to move MediaPipe's own landmarks to take its jitter down by a given share."""
    import scipy.sparse as sparse
    from scipy.sparse.linalg import spsolve

    out = px.copy()
    for hand in range(px.shape[1]):
        edges = np.flatnonzero(np.diff(np.r_[0, ok[:, hand].astype(np.int8), 0]))
        for a, b in zip(edges[::2], edges[1::2]):
            if b - a < 3:
                continue
            d2 = sparse.diags([1.0, -2.0, 1.0], [0, 1, 2], shape=(b - a - 2, b - a))
            system = (sparse.eye(b - a) + lam * (d2.T @ d2)).tocsc()
            out[a:b, hand] = spsolve(system, px[a:b, hand].reshape(b - a, -1)).reshape(b - a, 21, 2)
    return out


def run_real(args) -> None:
    import cv2

    from core_model.handmodel.registry import load_hand_model
    from core_model.pipeline.run import reconstruct
    from core_model.refine.arrays import refine_result_arrays
    from core_model.refine.gating import REASONS, USED
    from core_model.results import load_result

    torch.set_num_threads(args.threads)
    media = Path(args.media)
    clips = sorted(media.glob("*.mp4")) if media.is_dir() else []
    if not clips:
        print(f"no clips in {media}: skipped (the real clips are local test material only)")
        return
    hand_model = load_hand_model("auto")
    model, note = load_network(args.checkpoint, hand_model)
    print(f"network: {note}\n")
    refiner = Refiner(hand_model, config_of(args.set))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    print("| clip | frames refined | pen. frames % network | pen. frames % refined | pen. > 5 mm % refined | "
          "jitter network | jitter refined | jitter MediaPipe | 2D error refined (hand sizes) | landmarks used % | "
          "refine ms/frame |")
    print("|" + " --- |" * 11)
    references = []
    for clip in clips:
        out = work / f"{clip.stem}.npz"
        if not out.is_file():
            for _ in reconstruct(clip, out, model, model_preset="lite"):
                pass
        arrays = load_result(out).arrays()
        cap = cv2.VideoCapture(str(clip))
        size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        cap.release()
        refined, result = refine_result_arrays(arrays, refiner, image_size=size)
        np.savez_compressed(work / f"{clip.stem}.refined.npz", **refined)
        valid = np.asarray(arrays["valid"]).all(-1)
        n_ref = int(np.isfinite(refined["refined_keypoints"]).all((-1, -2, -3)).sum())
        pen_net = 100 * arrays["inside"][valid].any((-1, -2)).mean()
        pen_ref = 100 * refined["refined_inside"][valid].any((-1, -2)).mean()
        deep_ref = 100 * (refined["refined_depth"][valid].max((-1, -2)) > 0.005).mean()
        det = arrays["det_keypoints2d"]
        ok = np.isfinite(det).all((-1, -2)) & np.asarray(arrays["valid"])
        j_net, _ = metrics.jitter_2d(arrays["keypoints2d"], ok, det)
        j_ref, _ = metrics.jitter_2d(refined["refined_keypoints2d"], ok, det)
        j_mp, _ = metrics.jitter_2d(det, ok, det)
        used = refined["refined_gate"] == USED
        err = np.linalg.norm(refined["refined_keypoints2d"] - det, axis=-1).mean(-1)
        rel = err / hand_size(det)
        print(f"| {clip.name} | {n_ref} | {pen_net:.1f} | {pen_ref:.1f} | {deep_ref:.1f} | {j_net:.4f} | {j_ref:.4f} | "
              f"{j_mp:.4f} | {np.nanmedian(rel[used]):.3f} | {100 * used[ok].mean():.1f} | "
              f"{1e3 * result.seconds / max(n_ref, 1):.1f} |")
        reasons = {REASONS[i]: int((refined["refined_gate"][ok] == i).sum()) for i in range(len(REASONS))}
        print(f"<!-- {clip.name}: detected hand-frames by gating reason: {reasons} -->")
        references.append((clip.name, j_mp, [(lam, whittaker(det, ok, lam)) for lam in WHITTAKER_LAMBDAS], det, ok))
        if args.overlay:
            draw_overlays(clip, arrays, refined, Path(args.overlay) / clip.stem)
    print("\nReference: MediaPipe's own landmarks smoothed in 2D (Whittaker, lambda in frames^2): their jitter as a "
          "share of the raw landmarks', and how far the smoothing moved them (mean landmark displacement over the "
          "hand-box diagonal; median).\n")
    print("| clip | " + " | ".join(f"lambda {lam:g}" for lam in WHITTAKER_LAMBDAS) + " |")
    print("|" + " --- |" * (len(WHITTAKER_LAMBDAS) + 1))
    for name, j_mp, smoothed, det, ok in references:
        cells = []
        for _, y in smoothed:
            moved = np.linalg.norm(y - det, axis=-1).mean(-1) / hand_size(det)
            cells.append(f"{metrics.jitter_2d(y, ok, det)[0] / j_mp:.2f}x, moved {np.nanmedian(moved[ok]):.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\njitter (core_model.metrics.jitter_2d): mean |x[t-1] - 2 x[t] + x[t+1]| of the 2D keypoints over the "
          "longer side of MediaPipe's box of that hand at frame t, on frames where MediaPipe saw that hand on all "
          "three frames. 2D error: mean landmark distance to MediaPipe's over "
          "its hand-box diagonal, median over fitted hand-frames (a sanity check: it is what was fitted).")


def draw_overlays(clip: Path, arrays, refined, folder: Path, every: int = 15) -> None:
    """Every ``every``-th frame: MediaPipe (white), network (red), refined (green: right, cyan: left)."""
    import cv2

    from core_model.refine.gating import REASONS

    folder.mkdir(parents=True, exist_ok=True)
    cap = cv2.VideoCapture(str(clip))
    index = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if index % every == 0 and index < len(arrays["valid"]):
            for name, px, colours in (("det", arrays["det_keypoints2d"], [(255, 255, 255)] * 2),
                                      ("net", arrays["keypoints2d"], [(0, 0, 255)] * 2),
                                      ("ref", refined["refined_keypoints2d"], [(0, 255, 0), (255, 255, 0)])):
                for h in range(2):
                    pts = px[index, h]
                    if not np.isfinite(pts).all():
                        continue
                    for a, b in BONES:
                        cv2.line(frame, tuple(int(v) for v in pts[a]), tuple(int(v) for v in pts[b]), colours[h],
                                 1 if name == "det" else 2)
            gate = refined["refined_gate"][index]
            cv2.putText(frame, f"{index}: R {REASONS[gate[0]]} / L {REASONS[gate[1]]}", (10, 20),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 255), 1)
            cv2.imwrite(str(folder / f"{index:04d}.jpg"), frame)
        index += 1
    cap.release()


# ------------------------------------------------------------------------------------------ timing


def run_timing(args) -> None:
    from core_model.handmodel.registry import load_hand_model

    torch.set_num_threads(args.threads)
    hand_model = load_hand_model("auto")
    seqs = load_sequences(Path(args.data))
    rng = np.random.default_rng(0)
    inputs = []
    for s in seqs:
        det, score = simulate_detections(s["keypoints2d"], s["visibility"], s["crop"], rng, DetectorErrors())
        inputs.append(to_input(perturb(s, rng, NetworkErrors()), s, det, score))
    batch = RefineInput(**{f.name: torch.cat([getattr(i, f.name) for i in inputs])
                           for f in dataclasses.fields(RefineInput)}).to(args.device)
    frames = batch.betas.shape[0] * batch.betas.shape[1]
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, batch {tuple(batch.betas.shape[:2])} "
          f"= {frames} frames, load average {os.getloadavg()[0]:.2f}\n")
    configs = (("default (L-BFGS 10, Gauss-Newton 4, L-BFGS 30; eq. 6 at 20)", RefineConfig()),
               ("first-order only (`--set " + " ".join(FIRST_ORDER) + "`)", config_of(FIRST_ORDER)),
               ("3 Gauss-Newton steps", RefineConfig(gn_steps=3)),
               ("eq. 6 looked up at steps 15 and 25", RefineConfig(inter_refresh=(15, 25))),
               ("without the PnP start", RefineConfig(rigid_init=False)))
    print("| configuration | ms/frame, one batch (median of 3) | ms/frame, one sequence at a time |\n"
          "| --- | --- | --- |")
    for label, cfg in configs:
        refiner = Refiner(hand_model, cfg)
        refiner.refine(batch)
        times = [refiner.refine(batch).seconds for _ in range(3)]
        one_by_one = sum(refiner.refine(i.to(args.device)).seconds for i in inputs)  # as the pipeline: B = 1
        print(f"| {label} | {1e3 * np.median(times) / frames:.2f} | {1e3 * one_by_one / frames:.2f} |")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


FIRST_ORDER = ("gn_steps=0", "w_betas=1.0", "w_accel=1e5", "inter_refresh=(15,)")
"""The first-order refinement (the default before the Gauss-Newton steps), measured beside it in BENCHMARKS.md."""


def config_of(pairs: list[str] | tuple[str, ...]) -> RefineConfig:
    """RefineConfig with ``name=value`` overrides (values read as Python literals)."""
    import ast

    fields = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        fields[name] = ast.literal_eval(value)
    config = dataclasses.replace(RefineConfig(), **fields)
    print(f"refinement config overrides: {fields or 'none'}\n")
    return config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("synth")
    p.add_argument("--data", required=True, help="a synthetic test split (interhand synth --split test)")
    p.add_argument("--checkpoint")
    p.add_argument("--start", choices=("perturbed", "network", "both"), default="both")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    r = sub.add_parser("real")
    r.add_argument("--media", default=str(Path(__file__).resolve().parents[2] / "shared" / "real-media"))
    r.add_argument("--checkpoint")
    r.add_argument("--work", default="/tmp/interhand-refine-bench", help="where the result files are kept")
    r.add_argument("--overlay", help="write every 15th frame with the keypoints drawn into this folder")
    r.add_argument("--threads", type=int, default=2)
    t = sub.add_parser("timing")
    t.add_argument("--data", required=True, help="a synthetic test split (its sequences form one batch)")
    t.add_argument("--device", default="cpu")
    t.add_argument("--threads", type=int, default=1)
    for sp in (p, r):
        sp.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="RefineConfig overrides")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(getattr(args, "threads", 2)))
    {"synth": run_synth, "real": run_real, "timing": run_timing}[args.what](args)


if __name__ == "__main__":
    main()
