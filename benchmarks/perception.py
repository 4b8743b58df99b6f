"""The two-hand perception measured: synthetic test split, real validation set (MediaPipe beside), speed, sheets.

    python benchmarks/perception.py synth --checkpoint CK.pt [CK2.pt ...] --data data/perc-test
    python benchmarks/perception.py real  --checkpoint CK.pt [CK2.pt ...] [--media ../shared/real-media]
    python benchmarks/perception.py speed --checkpoint CK.pt [--threads 1]
    python benchmarks/perception.py sheet --checkpoint CK.pt --out DIR [--media ...]

``real`` scores every labelled frame of ``benchmarks/real_validation`` (sources missing under ``--media`` are
skipped and said so): PCK@0.1 of the labelled keypoints (a keypoint is wrong on a hand not found), the share of
frames where a person sees both hands that have both found, and mask IoU on frames with labelled masks. Rows:
our model finding the hands itself in the whole frame ("search"), our model on the labelled hands' box enlarged
1.5x ("given crop": the crop the pipeline gives it when it knows the hands), and MediaPipe's hand landmarker run
over the whole clip with the pipeline's right/left assignment (its tracking helps it). ``any-side`` columns score
each hand against whichever labelled hand fits it better (chirality forgiven). Tables are markdown.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core_model.perception.realval import (  # noqa: E402
    DEFAULT_FOLDER,
    FrameReader,
    LabelledFrame,
    load_validation_set,
    score_frame,
    summarise,
)

MEDIA = ROOT.parent / "shared" / "real-media"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _pct(v: float) -> str:
    return "–" if not np.isfinite(v) else f"{100 * v:.1f}"


# --------------------------------------------------------------------------------------------------- synthetic


def cmd_synth(args: argparse.Namespace) -> None:
    import torch

    from core_model.perception.dataset import SynthPerceptionDataset
    from core_model.perception.model import load_perception
    from core_model.perception.train import evaluate_crops

    torch.set_num_threads(args.threads)
    rows = []
    for ck in args.checkpoint:
        model, _ = load_perception(ck)
        data = SynthPerceptionDataset(args.data, model.config.input_size, train=False)
        s = evaluate_crops(model, data, args.frames)
        rows.append([Path(ck).parent.name + "/" + Path(ck).name, str(min(args.frames or len(data), len(data))),
                     f"{s['iou_right']:.3f}", f"{s['iou_left']:.3f}", f"{s['iou_hands']:.3f}", _pct(s["pck"]),
                     _pct(s["pck_any_side"]), _pct(s["not_swapped"]), _pct(s["presence_acc"])])
    print(_table(["checkpoint", "crops", "IoU right", "IoU left", "IoU hands (either side)", "PCK@0.1 visible %",
                  "PCK any-side %", "not swapped %", "presence correct %"], rows))


# --------------------------------------------------------------------------------------------------- real


def mediapipe_on_labels(dataset, reader: FrameReader, witness=None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{frame id: (keypoints [2, 21, 2], found [2])} from MediaPipe run over each whole clip, hands assigned to
    right/left as the pipeline assigns them; with ``witness`` (``pipeline.witness.PerceptionWitness``), the
    pipeline's fused witnesses instead (pass 1 of ``interhand run --witness fused``)."""
    from core_model.pipeline.detect import MediaPipeHandDetector, detect_frames
    from core_model.pipeline.region import assign_hands
    from core_model.pipeline.video import VideoFileSource

    out = {}
    for source in sorted({f.source for f in dataset.frames}):
        if not reader.available(source):
            continue
        with VideoFileSource(reader.path(source)) as video, MediaPipeHandDetector() as detector:
            frames = [hands for _, hands in detect_frames(iter(video), detector, video.info.fps, witness=witness)]
            slots = assign_hands(frames, video.info.fps)
            keypoints, score = slots.keypoints, slots.score
        for f in dataset.frames:
            if f.source == source and f.frame < len(keypoints):
                out[f.id] = (keypoints[f.frame].astype(np.float64), np.isfinite(score[f.frame]))
    return out


def _best_side(label: LabelledFrame, keypoints: np.ndarray, found: np.ndarray):
    """The prediction with its hands swapped when that fits the labels better (chirality forgiven)."""
    straight = score_frame(label, keypoints, found).correct.sum()
    crossed = score_frame(label, keypoints[::-1], found[::-1]).correct.sum()
    return (keypoints[::-1], found[::-1]) if crossed > straight else (keypoints, found)


def _score_rows(name: str, frames: list[LabelledFrame], preds: dict, masks: dict | None = None) -> list[list[str]]:
    rows = []
    subsets = {"all": frames, "touching": [f for f in frames if f.touching],
               **{f"src {s}": [f for f in frames if f.source == s] for s in sorted({f.source for f in frames})}}
    for subset, chosen in subsets.items():
        chosen = [f for f in chosen if f.id in preds]
        if not chosen:
            continue
        straight = [score_frame(f, *preds[f.id], None if masks is None else masks.get(f.id)) for f in chosen]
        anyside = [score_frame(f, *_best_side(f, *preds[f.id])) for f in chosen]
        s, a = summarise(chosen, straight), summarise(chosen, anyside)
        rows.append([name, subset, str(s.frames), str(s.keypoints), _pct(s.pck), _pct(a.pck),
                     f"{_pct(s.both_found)} ({s.both_frames})",
                     "–" if not s.masks else f"{s.iou_right:.2f} / {s.iou_left:.2f} ({s.masks})"])
    return rows


def cmd_real(args: argparse.Namespace) -> None:
    import torch

    from core_model.perception.infer import FramePerceiver, square_around
    from core_model.perception.model import load_perception

    torch.set_num_threads(args.threads)
    dataset = load_validation_set(args.labels)
    reader = FrameReader(dataset, args.media)
    missing = sorted({f.source for f in dataset.frames if not reader.available(f.source)})
    if missing:
        print(f"skipped sources not under {args.media}: {missing}")
    frames = [f for f in dataset.frames if reader.available(f.source)]
    images = {f.id: reader.read(f) for f in frames}
    print(f"{len(frames)} labelled frames ({sum(f.touching for f in frames)} with the hands touching or overlapping)")
    rows = []
    for ck in args.checkpoint:
        model, _ = load_perception(ck)
        perceiver = FramePerceiver(model, flip_average=args.flip)
        name = Path(ck).parent.name + "/" + Path(ck).stem
        for mode in ("search", "given crop"):
            preds, masks = {}, {}
            for f in frames:
                perceiver.reset()
                image = images[f.id]
                if mode == "search":
                    result = perceiver(image)
                else:
                    pts = f.keypoints[np.isfinite(f.keypoints).all(-1)]
                    result = perceiver(image, square_around(pts.min(0), pts.max(0)))
                preds[f.id] = (result.keypoints, result.found)
                masks[f.id] = result.frame_labels(*image.shape[:2])
            rows += _score_rows(f"{name} ({mode})", frames, preds, masks)
    if not args.no_mediapipe:
        rows += _score_rows("MediaPipe (whole clip, tracked)", frames, mediapipe_on_labels(dataset, reader))
        from core_model.pipeline.witness import PerceptionWitness

        for ck in args.checkpoint:
            witness = PerceptionWitness(load_perception(ck)[0])
            rows += _score_rows(f"fused: MediaPipe + {Path(ck).stem} where it sees < 2 hands", frames,
                                mediapipe_on_labels(dataset, reader, witness))
    print(_table(["method", "frames", "n", "labelled kps", "PCK@0.1 %", "PCK any-side %", "both found % (frames)",
                  "mask IoU R / L (frames)"], rows))


# --------------------------------------------------------------------------------------------------- speed


def cmd_speed(args: argparse.Namespace) -> None:
    import torch

    from core_model.perception.infer import FramePerceiver
    from core_model.perception.model import decode, inference_copy, load_perception

    torch.set_num_threads(args.threads)
    model, _ = load_perception(args.checkpoint)
    fused = inference_copy(model)
    s = model.config.input_size
    x = torch.rand(1, 3, s, s)
    xc = x.contiguous(memory_format=torch.channels_last)
    rows = []
    with torch.inference_mode():
        for _ in range(5):
            model.perceive(x)
            fused(xc)
        for name, fn in (("network (as trained) + decode, one crop", lambda: model.perceive(x)),
                         ("network (batch norms folded, channels-last), one crop", lambda: fused(xc)),
                         ("the same + decode", lambda: decode(fused(xc), s))):
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            rows.append([name, f"{s}", f"{1000 * np.median(times):.1f}", f"{1000 * np.percentile(times, 90):.1f}"])
    image = (np.random.default_rng(0).uniform(0, 255, (720, 1280, 3))).astype(np.uint8)
    perceiver = FramePerceiver(model)
    perceiver._track = np.array([400.0, 100.0, 400.0])
    times = []
    for _ in range(args.repeats // 2):
        t = time.perf_counter()
        perceiver(image, perceiver._track)
        times.append(time.perf_counter() - t)
    rows.append(["crop + network + decode + paste, 1280x720 frame", f"{s}", f"{1000 * np.median(times):.1f}",
                 f"{1000 * np.percentile(times, 90):.1f}"])
    print(f"torch threads {args.threads}; {args.repeats} repeats")
    print(_table(["what", "input px", "median ms", "p90 ms"], rows))


# --------------------------------------------------------------------------------------------------- sheets


def cmd_sheet(args: argparse.Namespace) -> None:
    import cv2
    import torch

    from core_model.perception.draw import draw_hands, draw_perception
    from core_model.perception.infer import FramePerceiver, crop_square
    from core_model.perception.model import load_perception

    torch.set_num_threads(args.threads)
    dataset = load_validation_set(args.labels)
    reader = FrameReader(dataset, args.media)
    model, _ = load_perception(args.checkpoint)
    perceiver = FramePerceiver(model, flip_average=args.flip)
    mp = mediapipe_on_labels(dataset, reader) if not args.no_mediapipe else {}
    args.out.mkdir(parents=True, exist_ok=True)
    tile = 420
    for source in sorted({f.source for f in dataset.frames if reader.available(f.source)}):
        rows = []
        for f in [f for f in dataset.frames if f.source == source]:
            image = reader.read(f)
            perceiver.reset()
            ours = draw_perception(image, perceiver(image))
            truth = draw_hands(image, f.keypoints)
            for h in range(2):
                for poly in f.polygons[h]:
                    cv2.polylines(truth, [np.round(poly).astype(np.int32)], True, (255, 255, 255), 1, cv2.LINE_AA)
            panels = [truth, ours]
            if f.id in mp:
                panels.append(draw_hands(image, mp[f.id][0]))
            pts = np.concatenate([f.keypoints[np.isfinite(f.keypoints).all(-1)], *f.polygons[0], *f.polygons[1]])
            if not len(pts):
                pts = np.array([[0, 0], image.shape[1::-1]], float)
            elif np.isfinite(f.keypoints).all(-1).sum() < 12:  # sparse labels: the hands reach well past them
                pts = np.concatenate([pts, pts.mean(0) + (pts - pts.mean(0)) * 1.8])
            lo, hi = pts.min(0), pts.max(0)
            side = max((hi - lo).max() * 1.3, 64)
            c = (lo + hi) / 2
            box = np.array([c[0] - side / 2, c[1] - side / 2, side])
            crops = [crop_square(p, box, tile) for p in panels]
            while len(crops) < 3:
                crops.append(np.full_like(crops[0], 255))
            row = np.concatenate(crops, 1)
            cv2.putText(row, f.id + (" touching" if f.touching else ""), (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        (255, 255, 0), 1, cv2.LINE_AA)
            rows.append(row)
        header = np.full((24, 3 * tile, 3), 255, np.uint8)
        for i, text in enumerate(("hand labels", "ours (search)", "MediaPipe (tracked)")):
            cv2.putText(header, text, (i * tile + 6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        path = args.out / f"sheet_{source}.png"
        cv2.imwrite(str(path), cv2.cvtColor(np.concatenate([header, *rows], 0), cv2.COLOR_RGB2BGR))
        print(f"wrote {path}")


def cmd_witness(args: argparse.Namespace) -> None:
    """Pass 1 of ``interhand run`` on each real clip with MediaPipe alone and with the fused witnesses: frames
    where the detector alone saw two hands, where the witnesses together saw two, where the region holds two
    hands, hands only the perception saw, and the time of the pass."""
    import json
    import time

    import torch

    from core_model.perception.model import load_perception
    from core_model.pipeline.run import detect_regions
    from core_model.pipeline.witness import PerceptionWitness
    from core_model.timing import StageTimer

    torch.set_num_threads(args.threads)
    counted = json.loads((Path(args.labels) / "both_hands_visible.json").read_text())["sources"]
    sources = json.loads((Path(args.labels) / "sources.json").read_text())["sources"]
    files = {source["file"]: name for name, source in sources.items()}
    rows = []
    for clip in sorted(Path(args.media).glob("*.mp4")):
        seen = np.zeros(0, bool)
        if clip.name in files and files[clip.name] in counted:
            source = counted[files[clip.name]]
            seen = np.zeros(source["frames"], bool)
            for start, stop in source["both_visible"]:
                seen[start:stop] = True
        for mode in ("mediapipe", "fused"):
            witness = PerceptionWitness(load_perception(args.checkpoint)[0]) if mode == "fused" else None
            timer = StageTimer()
            start = time.perf_counter()
            regions = next(r for r in detect_regions(clip, timer=timer, witness=witness) if not hasattr(r, "stage"))
            seconds = time.perf_counter() - start
            n = len(regions)
            witnessed = np.isfinite(regions.det_score).all(1)
            ours = regions.witness == 2 if regions.witness is not None else np.zeros((n, 2), bool)
            m = min(n, len(seen))
            both = regions.valid.all(1)[:m][seen[:m]]
            rows.append([clip.name, mode, str(n), _pct((regions.detector_hands == 2).mean()), _pct(witnessed.mean()),
                         _pct(regions.valid.all(1).mean()),
                         f"{_pct(both.mean())} ({int(seen.sum())})" if len(both) else "–", str(int(ours.sum())),
                         str(witness.frames_asked if witness else 0),
                         f"{1000 * timer.seconds.get('witness', 0.0) / max(witness.frames_asked, 1):.0f}"
                         if witness else "–", f"{1000 * seconds / n:.1f}"])
    print(_table(["clip", "witnesses", "frames", "detector saw 2 %", "witnesses saw 2 %", "region holds 2 %",
                  "both reconstructed where a person sees both % (frames)", "hands only ours saw", "frames asked",
                  "ms per asked frame", "pass 1 ms/frame"], rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("synth")
    p.add_argument("--checkpoint", nargs="+", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--frames", type=int, default=0, help="crops spread over the set (0: all)")
    for name in ("real", "sheet"):
        p = sub.add_parser(name)
        p.add_argument("--checkpoint", nargs="+" if name == "real" else None, required=True)
        p.add_argument("--labels", type=Path, default=DEFAULT_FOLDER)
        p.add_argument("--media", type=Path, default=MEDIA)
        p.add_argument("--no-mediapipe", action="store_true")
        p.add_argument("--flip", action="store_true", help="average each crop with its mirror image")
        if name == "sheet":
            p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("speed")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--repeats", type=int, default=60)
    p = sub.add_parser("witness")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--media", type=Path, default=MEDIA)
    p.add_argument("--labels", type=Path, default=DEFAULT_FOLDER, help="holds both_hands_visible.json")
    args = parser.parse_args()
    {"synth": cmd_synth, "real": cmd_real, "speed": cmd_speed, "sheet": cmd_sheet,
     "witness": cmd_witness}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
