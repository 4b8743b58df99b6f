"""``interhand evaluate``: the paper's Table 1 columns (Accel_E, MMPD, MPJPE, MPVPE, PA-MPJPE) plus MRRPE and
3D PCK / AUC (0-50 mm), under both root-alignment protocols, on whole held-out sequences; markdown, JSON and the
3D PCK curve (the paper's Fig. 3) as a PNG.

Whole sequences, by the path the app takes (:mod:`core_model.network.windowed`): T-frame windows overlapping by
``overlap`` frames, the network's parameters blended across them and the hands posed from the blend, so Accel_E
measures the motion the app shows. Crops are the loaders' unaugmented crops around the ground-truth hands, and a
landmark-guided model gets the simulated detector's landmarks of each frame, one track per sequence. Keypoints and
vertices are in STCNet's frame (right wrist at the origin); every metric is root-aligned per hand (or relative,
for MRRPE), so that frame needs no undoing.

A hand counts for the joint metrics on frames that are labelled and where all 21 of its joints are valid, for
MPVPE where its ground-truth vertices are of the hand model in use; MMPD is measured on every evaluated frame
(it needs no ground truth) and is also reported for the ground-truth meshes where they exist.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core_model.data.windows import AugmentParams, WindowDataset
from core_model.geometry.alignment import PROTOCOLS
from core_model.geometry.interpenetration import HandMeshes, detect_interpenetration
from core_model.metrics import PCK_THRESHOLDS_MM, accel_error, mmpd, mpjpe, mpvpe, mrrpe, pa_mpjpe, pck_curve
from core_model.network.stcnet import STCNet
from core_model.network.windowed import Frame, plan_windows, run_windows

log = logging.getLogger(__name__)

TABLE_COLUMNS = ("Accel_E", "MMPD", "MPJPE", "MPVPE", "PA-MPJPE", "MRRPE", "AUC")
"""Table 1's five columns, then MRRPE and the 3D PCK AUC over 0-50 mm."""
PCK_MARKS_MM = (10, 20, 30)


@dataclasses.dataclass
class SequencePrediction:
    """One sequence of N frames: predictions (right wrist at the origin) beside the ground truth (camera frame).

    keypoints / gt_keypoints [N, 2, 21, 3] and vertices / gt_vertices [N, 2, V, 3] metres; valid [N, 2]: the hand
    has full keypoint ground truth on a labelled frame; vertices_valid [N, 2]: its ground-truth vertices exist.
    """

    name: str
    keypoints: np.ndarray
    vertices: np.ndarray
    gt_keypoints: np.ndarray
    gt_vertices: np.ndarray
    valid: np.ndarray
    vertices_valid: np.ndarray


def predict_sequences(model: torch.nn.Module, dataset: WindowDataset, *, overlap: int | None = None,
                      batch: int = 4, device: torch.device | str = "cpu", rel_transl: str = "pred",
                      max_sequences: int | None = None,
                      progress: Callable[[int, int], None] | None = None) -> list[SequencePrediction]:
    """Run an STCNet over every sequence of ``dataset`` (built without augmentation) in overlapping windows, by
    the windowed inference ``interhand run`` uses (:func:`core_model.network.windowed.run_windows`).

    overlap: frames shared by consecutive windows (default T // 2); rel_transl: ``'pred'`` places the left hand
    with the network's translation, ``'gt'`` with the ground truth (the paper's setting)."""
    if rel_transl not in ("pred", "gt"):
        raise ValueError(f"rel_transl: expected 'pred' or 'gt', got {rel_transl!r}")
    if dataset.augmentation is not None:
        raise ValueError("dataset: build the evaluation dataset without augmentation")
    T = int(model.config.frames)
    if dataset.window != T:
        raise ValueError(f"dataset: windows of {dataset.window} frames, but the model takes T={T}")
    overlap = T // 2 if overlap is None else overlap
    count = len(dataset.sequences) if max_sequences is None else min(max_sequences, len(dataset.sequences))
    was_training = model.training
    model.eval()
    results = []
    try:
        for s in range(count):
            results.append(_predict_sequence(model, dataset, s, overlap, batch, device, rel_transl))
            if progress is not None:
                progress(s + 1, count)
    finally:
        model.train(was_training)
    return results


EVAL_PIECE = 32
"""Frames of a sequence read and cropped at a time (memory stays bounded on long sequences)."""


def _predict_sequence(model: STCNet, dataset: WindowDataset, s: int, overlap: int, batch: int, device,
                      rel_transl: str) -> SequencePrediction:
    seq = dataset.sequences[s]
    n, V = len(seq), dataset.model.num_vertices
    truth = SequencePrediction(seq.name, np.full((n, 2, 21, 3), np.nan, np.float32),
                               np.full((n, 2, V, 3), np.nan, np.float32), np.zeros((n, 2, 21, 3), np.float32),
                               np.zeros((n, 2, V, 3), np.float32), np.zeros((n, 2), bool), np.zeros((n, 2), bool))

    # The simulated detector runs over the whole sequence at once, as a real one runs over a video: its errors
    # persist over time as they do in a track, with no seam where a piece of frames ends (one draw per piece of
    # 16 frames instead took Accel_E from 11.0 to 13.0 mm/frame^2 on the synthetic test split).
    landmarks = None
    if model.config.landmarks:
        landmarks = dataset.build(s, 0, AugmentParams(), load_images=False, length=n).landmarks

    def frames() -> Iterator[Frame]:
        """The sequence's frames piece by piece; each piece's ground truth goes into ``truth`` as it is read."""
        for start in range(0, n, EVAL_PIECE):
            piece = dataset.build(s, start, AugmentParams(), length=min(EVAL_PIECE, n - start))
            ok = piece.hand_valid & piece.joint_valid.all(-1) & piece.labelled[:, None]
            stop = start + len(ok)
            truth.gt_keypoints[start:stop] = piece.keypoints3d.numpy()
            truth.gt_vertices[start:stop] = piece.vertices.numpy()
            truth.valid[start:stop] = ok.numpy()
            truth.vertices_valid[start:stop] = (ok & piece.vertices_valid).numpy()
            placement = torch.where(piece.root_rel_valid[:, None], piece.root_rel, 0.0)
            for k in range(len(ok)):
                yield Frame(start + k, piece.images[k], None if landmarks is None else landmarks[start + k],
                            placement[k] if rel_transl == "gt" else None)

    windows = plan_windows(np.ones(n, bool), int(model.config.frames), overlap)
    for update in run_windows(model, frames(), windows, overlap=overlap, batch=batch, device=device):
        truth.keypoints[update.frames] = update.outputs["keypoints"]
        truth.vertices[update.frames] = update.outputs["vertices"]
    return truth


@dataclasses.dataclass
class Evaluation:
    """Metric means in mm by protocol (``rows[protocol][column]``, columns :data:`TABLE_COLUMNS` plus PCK marks),
    the PCK curves, and counts. PA-MPJPE and MMPD do not depend on the root protocol (same value in each row).
    gt_mmpd: MMPD of the ground-truth meshes (NaN without them): the floor the data itself has."""

    rows: dict[str, dict[str, float]]
    pck_thresholds_mm: np.ndarray
    pck: dict[str, np.ndarray]
    gt_mmpd: float
    sequences: int
    frames: int
    valid_hands: int


def _nanmean(parts: list[np.ndarray]) -> float:
    values = np.concatenate([p.reshape(-1) for p in parts]) if parts else np.array([])
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else math.nan


def compute_metrics(predictions: list[SequencePrediction], meshes: HandMeshes,
                    thresholds_mm: np.ndarray = PCK_THRESHOLDS_MM) -> Evaluation:
    """Every metric over all frames of all sequences (means over valid hands and frames; Accel_E per sequence,
    over its interior frames)."""
    if not predictions:
        raise ValueError("predictions: no sequence to evaluate")
    kp = np.concatenate([p.keypoints for p in predictions])
    gt = np.concatenate([p.gt_keypoints for p in predictions])
    valid = np.concatenate([p.valid for p in predictions])
    if not valid.any():
        raise ValueError("data: no labelled hand with all 21 joints valid to evaluate")
    vert = np.concatenate([p.vertices for p in predictions])
    gt_vert = np.concatenate([p.gt_vertices for p in predictions])
    vert_valid = np.concatenate([p.vertices_valid for p in predictions])

    pen = detect_interpenetration(vert, meshes, depth="surface")
    shared = {"PA-MPJPE": pa_mpjpe(kp, gt, valid=valid).mean, "MMPD": mmpd(pen.depth).mean}
    gt_mmpd = math.nan
    both_gt = vert_valid.all(-1)
    if both_gt.any():
        gt_mmpd = mmpd(detect_interpenetration(gt_vert[both_gt], meshes, depth="surface").depth).mean

    rows, curves = {}, {}
    for name in PROTOCOLS:
        row = dict(shared)
        row["MPJPE"] = mpjpe(kp, gt, name, valid).mean
        row["MPVPE"] = mpvpe(vert, gt_vert, kp, gt, name, vert_valid).mean if vert_valid.any() else math.nan
        row["MRRPE"] = mrrpe(kp, gt, name, valid).mean
        accel = [accel_error(p.keypoints, p.gt_keypoints, name, p.valid).per_hand for p in predictions
                 if len(p.keypoints) >= 3]
        row["Accel_E"] = _nanmean(accel)
        curve = pck_curve(kp, gt, name, valid, thresholds_mm)
        row["AUC"] = curve.auc
        for mark in PCK_MARKS_MM:
            row[f"PCK@{mark}mm"] = float(np.interp(mark, curve.thresholds_mm, curve.pck))
        rows[name] = {k: row[k] for k in (*TABLE_COLUMNS, *(f"PCK@{m}mm" for m in PCK_MARKS_MM))}
        curves[name] = curve.pck
    return Evaluation(rows, np.asarray(thresholds_mm, float), curves, gt_mmpd, len(predictions), len(kp),
                      int(valid.sum()))


def _fmt(value: float, digits: int = 2) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.{digits}f}"


def to_markdown(result: Evaluation, meta: dict[str, Any]) -> str:
    """The table (one row per protocol) and the notes a reader needs to compare it with anything."""
    head = "| protocol | " + " | ".join(c if c != "AUC" else "AUC 0-50 mm" for c in TABLE_COLUMNS) + " |"
    lines = [f"## {meta.get('label') or 'STCNet'}", "", head, "|" + " --- |" * (len(TABLE_COLUMNS) + 1)]
    for name, row in result.rows.items():
        cells = [_fmt(row[c], 3 if c == "AUC" else 2) for c in TABLE_COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Millimetres; Accel_E in mm/frame² (what the field prints as mm/s²); AUC normalised to 0-1. "
        "PA-MPJPE and MMPD do not depend on the root protocol. MMPD: deepest penetration of the right hand into "
        f"the left per frame (0 without contact); ground-truth meshes: {_fmt(result.gt_mmpd)} mm.",
        "",
    ]
    lines += [f"- {name}: {proto.description}" for name, proto in PROTOCOLS.items()]
    lines += [
        f"- data: {', '.join(meta.get('data', []))}; {result.sequences} sequences, {result.frames} frames, "
        f"{result.valid_hands} hands with full ground truth",
        f"- checkpoint: {meta.get('checkpoint')} (sha256 {str(meta.get('checkpoint_sha256'))[:12]}), preset "
        f"{meta.get('preset')}, input {meta.get('input_size')}, hand model {meta.get('hand_model')}",
        f"- windows: T = {meta.get('frames')}, overlap {meta.get('overlap')} (blended); left hand placed with the "
        f"{'ground-truth' if meta.get('rel_transl') == 'gt' else 'predicted'} relative translation",
    ]
    return "\n".join(lines) + "\n"


def to_json(result: Evaluation, meta: dict[str, Any]) -> dict[str, Any]:
    def clean(v: float) -> float | None:
        return v if math.isfinite(v) else None

    return {
        "meta": meta,
        "units": {"Accel_E": "mm/frame^2", "AUC": "0-1 over 0-50 mm", **{c: "mm" for c in TABLE_COLUMNS
                                                                         if c not in ("Accel_E", "AUC")}},
        "protocols": {name: {"description": PROTOCOLS[name].description,
                             **{k: clean(v) for k, v in row.items()}} for name, row in result.rows.items()},
        "gt_mmpd": clean(result.gt_mmpd),
        "counts": {"sequences": result.sequences, "frames": result.frames, "valid_hands": result.valid_hands},
        "pck_curve": {"thresholds_mm": result.pck_thresholds_mm.tolist(),
                      **{name: curve.tolist() for name, curve in result.pck.items()}},
    }


def plot_pck(result: Evaluation, png: str | Path, label: str = "STCNet") -> Path:
    """The 3D PCK curve of each protocol (the paper's Fig. 3: error threshold in mm against 3D PCK)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from core_model.fileio import atomic_path

    fig = Figure(figsize=(5.5, 4.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for (name, curve), style in zip(result.pck.items(), ("-", "--")):
        ax.plot(result.pck_thresholds_mm, curve, style, linewidth=2,
                label=f"{label}, {name} (AUC {result.rows[name]['AUC']:.3f})")
    ax.set_xlim(result.pck_thresholds_mm[0], result.pck_thresholds_mm[-1])
    ax.set_ylim(0, 1)
    ax.set_xlabel("error threshold (mm)")
    ax.set_ylabel("3D PCK")
    ax.set_title("3D PCK of interacting hands")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    out = Path(png)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, facecolor="white")
    return out


@dataclasses.dataclass
class EvaluationFiles:
    markdown: Path
    json: Path
    png: Path


def evaluate_checkpoint(checkpoint: str | Path, data: list[str], out: str | Path, *, overlap: int | None = None,
                        batch: int = 4, device: str = "auto", rel_transl: str = "pred", split: str = "test",
                        max_sequences: int | None = None, label: str | None = None,
                        progress: Callable[[int, int], None] | None = None) -> tuple[Evaluation, EvaluationFiles]:
    """Load ``checkpoint``, evaluate it on ``data`` (specs as for training; InterHand2.6M's ``split``), write
    ``metrics.md``, ``metrics.json`` and ``pck.png`` into ``out``."""
    from core_model.device import pick_device
    from core_model.fileio import atomic_path
    from core_model.network.checkpoint import load_checkpoint
    from core_model.results import file_sha256
    from core_model.training.datasets import build_windows, parse_source

    checkpoint = Path(checkpoint)
    chosen = pick_device(device)
    model, ckpt = load_checkpoint(checkpoint, device=chosen)
    for spec in data:
        source = parse_source(spec, split)
        if source.kind == "synthetic":
            set_split = json.loads((source.root / "dataset.json").read_text()).get("split")
            if set_split != "test":
                log.warning("data: %s is the synthetic %r split, not the held-out test split", source.root,
                            set_split)
    dataset = build_windows(data, model.hand_model, window=model.config.frames, crop_size=model.config.input_size,
                            split=split)
    predictions = predict_sequences(model, dataset, overlap=overlap, batch=batch, device=chosen,
                                    rel_transl=rel_transl, max_sequences=max_sequences, progress=progress)
    result = compute_metrics(predictions, HandMeshes.from_model(model.hand_model))
    T = model.config.frames
    meta = {"label": label, "checkpoint": str(checkpoint), "checkpoint_sha256": file_sha256(checkpoint),
            "preset": model.config.preset, "input_size": model.config.input_size, "frames": T,
            "overlap": T // 2 if overlap is None else overlap, "rel_transl": rel_transl,
            "hand_model": ckpt.hand_model, "data": list(data), "split": split,
            "trained_steps": ckpt.extra.get("train", {}).get("progress", {}).get("step"),
            "ablation": ckpt.extra.get("train", {}).get("config", {}).get("ablation")}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = EvaluationFiles(out / "metrics.md", out / "metrics.json", out / "pck.png")
    with atomic_path(files.markdown) as tmp:
        tmp.write_text(to_markdown(result, meta), encoding="utf-8")
    with atomic_path(files.json) as tmp:
        tmp.write_text(json.dumps(to_json(result, meta), indent=2), encoding="utf-8")
    plot_pck(result, files.png, label or "STCNet")
    return result, files


def add_evaluate_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``evaluate`` to an argparse subparsers object."""
    p = subparsers.add_parser(
        "evaluate", help="evaluate a checkpoint on held-out sequences: Table 1 metrics, MRRPE, 3D PCK curve",
        description="Evaluate an STCNet checkpoint on whole held-out sequences (overlapping windows, blended): "
                    "Accel_E, MMPD, MPJPE, MPVPE, PA-MPJPE, MRRPE and 3D PCK/AUC under both root protocols; "
                    "writes metrics.md, metrics.json and pck.png.")
    p.set_defaults(handler=run_evaluate)
    p.add_argument("--checkpoint", type=Path, required=True, help="STCNet checkpoint (.pt)")
    p.add_argument("--data", action="append", required=True, metavar="[KIND:]PATH",
                   help="held-out data: a synthetic test set, interhand:ROOT or hic:ROOT (repeatable)")
    p.add_argument("--out", type=Path, required=True, help="folder for metrics.md, metrics.json and pck.png")
    p.add_argument("--split", default="test", help="InterHand2.6M split (default test)")
    p.add_argument("--overlap", type=int, default=None, help="frames shared by consecutive windows (default T/2)")
    p.add_argument("--batch", type=int, default=4, help="windows per forward pass (default 4)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--rel-transl", choices=("pred", "gt"), default="pred",
                   help="place the left hand with the predicted (default) or ground-truth relative translation "
                        "(the paper's setting)")
    p.add_argument("--max-sequences", type=int, default=None, help="evaluate only the first N sequences")
    p.add_argument("--label", default=None, help="name of the row (e.g. the ablation)")
    return p


def run_evaluate(args: argparse.Namespace) -> int:
    import sys

    def progress(done: int, total: int) -> None:
        print(f"\revaluate: {done}/{total} sequences", end="", file=sys.stderr, flush=True)

    _, files = evaluate_checkpoint(args.checkpoint, args.data, args.out, overlap=args.overlap,
                                   batch=args.batch, device=args.device, rel_transl=args.rel_transl,
                                   split=args.split, max_sequences=args.max_sequences, label=args.label,
                                   progress=progress)
    print(file=sys.stderr)
    print(files.markdown.read_text(encoding="utf-8"))
    print(f"wrote {files.markdown}, {files.json}, {files.png}")
    return 0
