"""The pipeline on real two-hand clips, measured without ground truth. Prints markdown tables.

    python benchmarks/real_video.py [--media ../shared/real-media] [--checkpoint PATH] [--work DIR]
                                    [--threads 1] [--refine] [--overlay DIR] [--overlay-frames 4]

Runs ``core_model.pipeline.run.reconstruct`` (MediaPipe, crops, STCNet, blending, interpenetration; with
``--refine`` also the test-time refinement) on every ``*.mp4`` under ``--media`` with the shipped model (or
``--checkpoint``), and reports per clip:

1. agreement of the network's 2D keypoints with MediaPipe's landmarks (PCK and mean error, per hand), on
   hand-frames where MediaPipe is confident;
2. the share of two-hand frames whose hands interpenetrate, and deeper than 5 mm;
3. jitter: 2D acceleration of the keypoints against MediaPipe's own, and 3D acceleration of the hand poses;
4. frames per second of the run.

Results are kept under ``--work`` per clip and checkpoint (``<clip>.<sha256[:16]>.npz`` + ``.json`` with the
run's timing), so a second call only measures; a new checkpoint, a changed clip, or ``--refine`` on a result made
without it runs the pipeline again. The clips are local test material: they are read where they are, never
copied. The metric functions below are plain numpy (``tests/test_real_video_metrics.py``); the jitter is
``core_model.metrics.jitter_2d`` and ``jitter_3d``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core_model.geometry.hand_box import box_side  # noqa: E402 (after the path is set)
from core_model.metrics import jitter_2d, jitter_3d  # noqa: E402

MIN_SCORE = 0.8
"""MediaPipe confidence (``det_score``: its handedness score, the only per-hand confidence of the Tasks API) from
which a hand-frame counts as a reference."""
PCK_THRESHOLD = 0.1
"""PCK threshold in hand-box sizes."""
DEEP_M = 0.005
"""Penetration depth (metres) that counts as deep."""
HANDS = ("right", "left")

# ------------------------------------------------------------------------------------------ metrics (numpy)


def confident(det: np.ndarray, score: np.ndarray, min_score: float = MIN_SCORE) -> np.ndarray:
    """det [N, 2, 21, 2], score [N, 2] -> [N, 2] bool: MediaPipe saw the hand with score >= ``min_score`` and
    all 21 landmarks finite."""
    return np.isfinite(det).all(axis=(-1, -2)) & (np.nan_to_num(score, nan=-np.inf) >= min_score)


def finite(points: np.ndarray) -> np.ndarray:
    """[..., J, D] -> [...] bool: every coordinate finite."""
    return np.isfinite(points).all(axis=(-1, -2))


def normalised_errors(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """[..., 21, 2] x 2 -> [..., 21]: distance of each keypoint to its reference over ``box_side(ref)``."""
    return np.linalg.norm(pred - ref, axis=-1) / box_side(ref)[..., None]


def pck(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray, threshold: float = PCK_THRESHOLD
        ) -> tuple[float, float, int]:
    """(PCK, mean normalised error, hand-frames used) of pred against ref [..., 21, 2] on the hand-frames where
    ``mask`` [...] holds and both are finite. PCK: share of keypoints within ``threshold`` box sizes."""
    use = mask & finite(pred) & finite(ref)
    if not use.any():
        return float("nan"), float("nan"), 0
    err = normalised_errors(pred[use], ref[use])
    return float((err <= threshold).mean()), float(err.mean()), int(use.sum())


def penetration_shares(inside: np.ndarray, depth: np.ndarray, both: np.ndarray, deep: float = DEEP_M
                       ) -> tuple[float, float, int]:
    """(share with any vertex inside the other hand, share with a depth above ``deep``, frames) over the frames
    where ``both`` [N] holds. inside [N, 2, V] bool, depth [N, 2, V] metres."""
    n = int(both.sum())
    if n == 0:
        return float("nan"), float("nan"), 0
    any_inside = inside[both].any(axis=(-1, -2))
    deepest = np.nan_to_num(depth[both], nan=0.0).max(axis=(-1, -2))
    return float(any_inside.mean()), float((deepest > deep).mean()), n


def swapped_fits_better(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> tuple[float, int]:
    """Handedness check: (share of frames where pairing the predicted hands [N, 2, 21, 2] the other way round
    with the reference hands gives the smaller mean normalised error, frames) over frames where ``mask`` [N, 2]
    holds for both hands."""
    use = mask.all(axis=-1) & finite(pred).all(axis=-1) & finite(ref).all(axis=-1)
    if not use.any():
        return float("nan"), 0
    p, r = pred[use], ref[use]
    straight = normalised_errors(p, r).mean(axis=(-1, -2))
    swapped = normalised_errors(p[:, ::-1], r).mean(axis=(-1, -2))
    return float((swapped < straight).mean()), int(use.sum())


# ------------------------------------------------------------------------------------------ per clip


def clip_metrics(arrays: dict[str, np.ndarray], prefix: str = "") -> dict[str, float]:
    """Every figure of one result's keypoints: the network's (prefix '') or the refined ones ('refined_')."""
    det, score = arrays["det_keypoints2d"], arrays["det_score"]
    px, kp = arrays[prefix + "keypoints2d"], arrays[prefix + "keypoints"]
    valid = np.asarray(arrays["valid"], bool)
    conf = confident(det, score)
    out: dict[str, float] = {}
    for h, name in enumerate(HANDS):
        out[f"pck {name}"], out[f"err {name}"], out[f"n {name}"] = pck(px[:, h], det[:, h], conf[:, h] & valid[:, h])
    out["pck both"], out["err both"], out["n both"] = pck(px, det, conf & valid)
    out["pck swapped"], _, _ = pck(px[:, ::-1], det, conf & valid[:, ::-1])
    out["swap better"], out["swap n"] = swapped_fits_better(px, det, conf & valid)
    both = valid.all(axis=-1) & finite(kp).all(axis=-1)
    out["pen"], out["deep"], out["pen n"] = penetration_shares(arrays[prefix + "inside"], arrays[prefix + "depth"],
                                                                both)
    ok = conf & valid & finite(px)
    out["jit net"], out["jit n"] = jitter_2d(px, ok, det)
    out["jit mp"], _ = jitter_2d(det, ok, det)
    out["jit ratio"] = out["jit net"] / out["jit mp"] if out["jit mp"] > 0 else float("nan")
    out["jit3d"], out["jit3d n"] = jitter_3d(kp, valid)
    return out


# ------------------------------------------------------------------------------------------ running


def run_clip(clip: Path, work: Path, model, preset: str, sha: str, refine: bool, device: str, threads: int,
             clip_sha: str) -> tuple[Path, dict]:
    """The result file of ``clip`` under ``work`` and its run record, running the pipeline unless cached."""
    import torch

    from core_model.pipeline.run import reconstruct
    from core_model.timing import StageTimer

    out = work / f"{clip.stem}.{sha[:16]}.npz"
    record_path = out.with_suffix(".json")
    if out.is_file() and record_path.is_file():
        record = json.loads(record_path.read_text())
        if record.get("source_sha256") == clip_sha and record.get("checkpoint_sha256") == sha and (
                record.get("refine") or not refine):
            record["cached"] = True
            return out, record
    config = None
    if refine:
        from core_model.refine import RefineConfig

        config = RefineConfig()
    timer = StageTimer()
    load = os.getloadavg()[0]
    start = time.perf_counter()
    frames = 0
    with torch.no_grad():
        for event in reconstruct(clip, out, model, model_preset=preset, checkpoint_sha256=sha, device=device,
                                 timer=timer, refine=config):
            if event.stage == "done":
                frames = event.result.num_frames
    seconds = time.perf_counter() - start
    record = {"clip": clip.name, "source_sha256": clip_sha, "checkpoint_sha256": sha, "refine": refine,
              "frames": frames, "seconds": seconds, "stages": {k: round(v, 3) for k, v in timer.seconds.items()},
              "threads": threads, "device": device, "load_before": load, "load_after": os.getloadavg()[0],
              "created": time.strftime("%Y-%m-%d %H:%M:%S")}
    record_path.write_text(json.dumps(record, indent=1))
    record["cached"] = False
    return out, record


def draw_overlays(clip: Path, arrays: dict[str, np.ndarray], folder: Path, count: int) -> list[Path]:
    """``count`` frames spread over the clip's two-hand frames (else any frame with a hand), with MediaPipe's
    landmarks (white), the network's keypoints (red right, blue left) and, when present, the refined ones
    (yellow right, green left). Returns the files written."""
    import cv2

    from core_model.handmodel.keypoints import BONES
    from core_model.pipeline.video import open_source

    valid = np.asarray(arrays["valid"], bool)
    pool = np.flatnonzero(valid.all(-1)) if valid.all(-1).any() else np.flatnonzero(valid.any(-1))
    if not len(pool) or count < 1:
        return []
    picks = set(pool[np.linspace(0, len(pool) - 1, min(count, len(pool))).round().astype(int)].tolist())
    layers = [("MediaPipe", arrays["det_keypoints2d"], ((255, 255, 255), (255, 255, 255)), 1),
              ("network", arrays["keypoints2d"], ((0, 0, 255), (255, 128, 0)), 2)]
    if "refined_keypoints2d" in arrays:
        layers.append(("refined", arrays["refined_keypoints2d"], ((0, 255, 255), (0, 255, 0)), 2))
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    with open_source(clip) as source:
        for index, rgb in source:
            if index > max(picks):
                break
            if index not in picks:
                continue
            frame = np.ascontiguousarray(rgb[..., ::-1])
            unit = max(1, round(max(frame.shape[:2]) / 640))
            for _, px, colours, width in layers:
                for h in range(2):
                    pts = px[index, h]
                    if not np.isfinite(pts).all():
                        continue
                    p = [tuple(int(v) for v in np.rint(q)) for q in pts]
                    for a, b in BONES:
                        cv2.line(frame, p[a], p[b], colours[h], width * unit, cv2.LINE_AA)
                    for q in p:
                        cv2.circle(frame, q, (width + 1) * unit, colours[h], -1, cv2.LINE_AA)
                    cv2.circle(frame, p[0], (width + 4) * unit, colours[h], unit, cv2.LINE_AA)   # the wrist
            score = arrays["det_score"][index]
            text = [f"frame {index}  MP score R {score[0]:.2f} L {score[1]:.2f}",
                    "white MediaPipe | network: red R, blue L" + (" | refined: yellow R, green L"
                                                                  if len(layers) == 3 else "")]
            for row, line in enumerate(text):
                y = (18 + 18 * row) * unit
                cv2.putText(frame, line, (8 * unit, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45 * unit, (0, 0, 0), 3 * unit,
                            cv2.LINE_AA)
                cv2.putText(frame, line, (8 * unit, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45 * unit, (255, 255, 255),
                            unit, cv2.LINE_AA)
            path = folder / f"{clip.stem}_{index:04d}.jpg"
            cv2.imwrite(str(path), frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
            written.append(path)
    return written


# ------------------------------------------------------------------------------------------ report


def _f(x: float, digits: int = 3) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _pct(x: float) -> str:
    return "–" if not np.isfinite(x) else f"{100 * x:.1f}"


def report(rows: list[tuple[str, str, dict[str, float]]], records: dict[str, dict]) -> None:
    print("### 1. 2D agreement with MediaPipe (PCK@0.1 box, mean error in boxes)\n")
    print("| clip | keypoints | hand-frames R / L | PCK R | PCK L | PCK both | err R | err L | err both | "
          "PCK both, hands swapped | frames where swapped fits better |")
    print("|" + " --- |" * 11)
    for clip, source, m in rows:
        print(f"| {clip} | {source} | {m['n right']} / {m['n left']} | {_pct(m['pck right'])} | {_pct(m['pck left'])} "
              f"| {_pct(m['pck both'])} | {_f(m['err right'])} | {_f(m['err left'])} | {_f(m['err both'])} | "
              f"{_pct(m['pck swapped'])} | {_pct(m['swap better'])} % of {m['swap n']} |")
    print(f"\nReference: MediaPipe's landmarks on hand-frames with det_score >= {MIN_SCORE} (MediaPipe's handedness "
          "score, its only per-hand confidence) and all 21 landmarks finite, where the pipeline also reconstructed "
          "that hand. Box size = the longer side of the axis-aligned bounding box of MediaPipe's 21 landmarks of "
          f"that hand on that frame. PCK: % of keypoints within {PCK_THRESHOLD} box sizes of MediaPipe's; err: mean "
          "keypoint distance in box sizes. 'hands swapped': the network's right hand scored against MediaPipe's "
          "left and vice versa; 'swapped fits better': % of frames with both hands confident where that pairing "
          "has the smaller mean error (a handedness check: near 0 % is consistent, near 100 % systematic).\n")
    print("### 2. Interpenetration\n")
    print("| clip | keypoints | two-hand frames | interpenetrating % | deeper than 5 mm % |")
    print("|" + " --- |" * 5)
    for clip, source, m in rows:
        print(f"| {clip} | {source} | {m['pen n']} | {_pct(m['pen'])} | {_pct(m['deep'])} |")
    print("\nOver frames where both hands were reconstructed: % with any vertex of one hand inside the other, and % "
          f"whose deepest vertex lies more than {1e3 * DEEP_M:.0f} mm inside.\n")
    print("### 3. Jitter\n")
    print("| clip | keypoints | triples | 2D accel. (boxes) | MediaPipe 2D accel. (boxes) | ratio | "
          "3D triples | 3D accel. mm/frame² |")
    print("|" + " --- |" * 8)
    for clip, source, m in rows:
        print(f"| {clip} | {source} | {m['jit n']} | {_f(m['jit net'], 4)} | {_f(m['jit mp'], 4)} | "
              f"{_f(m['jit ratio'], 2)} | {m['jit3d n']} | {_f(m['jit3d'], 2)} |")
    print("\n2D: mean over keypoints of |x[t-1] - 2 x[t] + x[t+1]| (pixels) over the box size (as above) of "
          "MediaPipe's landmarks at frame t, on hand-triples of consecutive frames where MediaPipe saw that hand "
          f"confidently (score >= {MIN_SCORE}, 21 finite) and the pipeline reconstructed it on all three; "
          "MediaPipe's own landmarks on the same triples; ratio = keypoints / MediaPipe (1 = as smooth as the "
          "detector). 3D: the same acceleration of the 20 finger keypoints relative to their hand's wrist, in mm per "
          "frame², on triples where the hand was reconstructed on all three frames (no MediaPipe condition).\n")
    print("### 4. Run\n")
    print("| clip | frames | wall s | frames/s | detect s | model s | refine s | threads | load avg before / after | "
          "cached |")
    print("|" + " --- |" * 10)
    for clip, r in records.items():
        st = r["stages"]
        print(f"| {clip} | {r['frames']} | {r['seconds']:.1f} | {r['frames'] / r['seconds']:.2f} | "
              f"{st.get('detect', 0):.1f} | {st.get('model', 0):.1f} | {st.get('refine', 0):.1f} | {r['threads']} | "
              f"{r['load_before']:.1f} / {r['load_after']:.1f} | {'yes, ' + r['created'] if r['cached'] else 'no'} |")
    print("\nwall: the whole reconstruct() call (decode, MediaPipe, crops, network, blending, hand model, "
          "interpenetration, refinement with --refine, writing); frames/s = frames / wall. Stage seconds are summed "
          "inside the run (decoding overlaps them in a thread). Cached rows repeat the timing of the run that made "
          "the file.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--media", default=str(ROOT.parent / "shared" / "real-media"),
                        help="folder of *.mp4 clips (default ../shared/real-media beside the repository)")
    parser.add_argument("--checkpoint", help="an STCNet checkpoint; default the shipped model")
    parser.add_argument("--work", default="/tmp/interhand-real-video", help="where result files are cached")
    parser.add_argument("--threads", type=int, default=1, help="torch / OpenMP / OpenCV threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--refine", action="store_true", help="also run the test-time refinement and report it")
    parser.add_argument("--overlay", help="write a few overlay JPEGs per clip into this folder")
    parser.add_argument("--overlay-frames", type=int, default=4, help="overlays per clip")
    args = parser.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import cv2
    import torch

    from core_model.pipeline.models import load_run_model
    from core_model.results import file_sha256, load_result

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    media = Path(args.media)
    clips = sorted(media.glob("*.mp4")) if media.is_dir() else []
    if not clips:
        print(f"no clips in {media}: nothing to measure (the real clips are local test material only)")
        return
    model, preset, sha = load_run_model(args.checkpoint, "auto", torch.device(args.device))
    print(f"model: {args.checkpoint or 'shipped'} (preset {preset}, hand model {model.hand_model.name}, sha256 "
          f"{sha[:16]}); device {args.device}, {args.threads} thread(s); refine {'on' if args.refine else 'off'}\n")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows, records = [], {}
    for clip in clips:
        out, record = run_clip(clip, work, model, preset, sha, args.refine, args.device, args.threads,
                               file_sha256(clip))
        records[clip.name] = record
        arrays = load_result(out).arrays()
        rows.append((clip.name, "network", clip_metrics(arrays)))
        if args.refine and "refined_keypoints2d" in arrays:
            rows.append((clip.name, "refined", clip_metrics(arrays, "refined_")))
        if args.overlay:
            shown = arrays if args.refine else {k: v for k, v in arrays.items() if not k.startswith("refined_")}
            for path in draw_overlays(clip, shown, Path(args.overlay), args.overlay_frames):
                print(f"<!-- overlay {path} -->")
    print()
    report(rows, records)


if __name__ == "__main__":
    main()
