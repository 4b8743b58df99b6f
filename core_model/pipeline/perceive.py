"""``interhand perceive VIDEO|IMAGE|FOLDER -o OUT``: both hands' masks and keypoints, drawn over the frames.

OUT is a folder: ``perception.npz`` (per frame: keypoints [N, 2, 21, 2] frame pixels, confidence [N, 2, 21],
presence [N, 2], box [N, 3] (x, y, side of the square crop), crop_labels [N, s, s] uint8 0/1/2 over that crop,
handedness [N] (0.5-1: how sure the right/left assignment is);
``meta`` JSON), and the frames with everything drawn: ``overlay.mp4`` for a video, ``NAME.png`` per image.
``--sheet`` also writes ``sheet.png``, frames across the clip on one page.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
SHIPPED = ("models", "perception_lite_synth.pt")


def add_perceive_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("perceive", help="segment both hands and find their keypoints, drawn over the frames",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(handler=cmd_perceive)
    p.add_argument("input", type=Path, help="a video, an image, or a folder of images")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    p.add_argument("--checkpoint", type=Path, default=None, help="perception checkpoint (default: the shipped one)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--roi", default=None, help="x,y,w,h: use this two-hand region on every frame (else found)")
    p.add_argument("--step", type=int, default=1, help="every STEP-th frame of a video (default 1)")
    p.add_argument("--flip", action="store_true", help="average each crop with its mirror image (2x the time)")
    p.add_argument("--sheet", action="store_true", help="also write sheet.png: 12 frames across the input")
    return p


def _frames(path: Path, step: int):
    """(name, index, RGB frame, fps) of an image, an image folder or a video."""
    from core_model.pipeline.video import VideoFileSource, open_source

    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        import cv2

        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"input: {path} is not an image OpenCV can read")
        yield path.stem, 0, cv2.cvtColor(image, cv2.COLOR_BGR2RGB), 30.0
        return
    source = open_source(path)
    with source:
        for index, frame in iter(source):
            if index % step == 0:
                name = f"{index:06d}" if isinstance(source, VideoFileSource) else Path(source.files[index]).stem
                yield name, index, frame, source.info.fps


def cmd_perceive(args: argparse.Namespace) -> int:
    import cv2

    from core_model.assets import asset_path
    from core_model.device import pick_device
    from core_model.fileio import atomic_path
    from core_model.perception.draw import draw_perception
    from core_model.perception.infer import FramePerceiver
    from core_model.perception.model import load_perception

    if args.step < 1:
        raise ValueError(f"--step: expected at least 1, got {args.step}")
    if not args.input.exists():
        raise FileNotFoundError(f"input: no such file or folder {args.input}")
    checkpoint = args.checkpoint or asset_path(*SHIPPED)
    device = pick_device(args.device)
    model, meta = load_perception(checkpoint, device)
    perceiver = FramePerceiver(model, device, flip_average=args.flip)
    box = None
    if args.roi:
        x, y, w, h = (float(v) for v in args.roi.split(","))
        side = max(w, h)
        box = np.array([x + w / 2 - side / 2, y + h / 2 - side / 2, side])
    video = args.input.is_file() and args.input.suffix.lower() not in IMAGE_SUFFIXES
    records, names, drawn, writer = [], [], [], None
    tmp_video = args.out / ".overlay.partial.mp4"
    try:
        for name, index, frame, fps in _frames(args.input, args.step):
            args.out.mkdir(parents=True, exist_ok=True)  # only once a frame was read: bad input leaves nothing
            result = perceiver(frame, box)
            records.append((index, result))
            overlay = draw_perception(frame, result)
            if video:
                if writer is None:
                    writer = cv2.VideoWriter(str(tmp_video), cv2.VideoWriter_fourcc(*"mp4v"), fps / args.step,
                                             (frame.shape[1], frame.shape[0]))
                writer.write(cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
            else:
                _write_png(args.out / f"{name}.png", overlay)
            names.append(name)
            drawn.append(overlay)
            found = "".join("RL"[h] if result.found[h] else "-" for h in range(2))
            print(f"\rperceive: frame {index} hands {found}", end="", file=sys.stderr, flush=True)
    finally:
        if writer is not None:
            writer.release()
    print(file=sys.stderr)
    if not records:
        raise ValueError(f"input: {args.input} holds no frame")
    if writer is not None:
        tmp_video.replace(args.out / "overlay.mp4")
    arrays = {
        "frame_index": np.array([i for i, _ in records]),
        "keypoints": np.stack([r.keypoints for _, r in records]).astype(np.float32),
        "confidence": np.stack([r.confidence for _, r in records]).astype(np.float32),
        "presence": np.stack([r.presence for _, r in records]).astype(np.float32),
        "box": np.stack([r.box for _, r in records]).astype(np.float32),
        "handedness": np.array([r.handedness for _, r in records], np.float32),
        "crop_labels": np.stack([r.crop_labels for _, r in records]).astype(np.uint8),
    }
    info = {"input": str(args.input), "checkpoint": str(checkpoint), "model_meta": meta, "frames": len(records),
            "keypoint_order": "wrist, thumb1-4, index1-4, middle1-4, ring1-4, pinky1-4", "hands": "0 right, 1 left"}
    with atomic_path(args.out / "perception.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, meta=np.array(json.dumps(info)), **arrays)
    both = float(np.mean([r.found.all() for _, r in records]))
    print(f"wrote {args.out}: {len(records)} frames, both hands found on {100 * both:.0f} %")
    if args.sheet:
        pick = np.linspace(0, len(drawn) - 1, min(12, len(drawn))).round().astype(int)
        tiles = [cv2.resize(drawn[i], (320, round(320 * drawn[i].shape[0] / drawn[i].shape[1]))) for i in pick]
        height = max(t.shape[0] for t in tiles)
        tiles = [np.pad(t, ((0, height - t.shape[0]), (0, 0), (0, 0)), constant_values=255) for t in tiles]
        for t, i in zip(tiles, pick):
            cv2.putText(t, names[i], (4, height - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1, cv2.LINE_AA)
        while len(tiles) % 4:
            tiles.append(np.full_like(tiles[0], 255))
        sheet = np.concatenate([np.concatenate(tiles[i:i + 4], 1) for i in range(0, len(tiles), 4)], 0)
        _write_png(args.out / "sheet.png", sheet)
        print(f"wrote {args.out / 'sheet.png'}")
    return 0


def _write_png(path: Path, rgb: np.ndarray) -> None:
    import cv2

    from core_model.fileio import atomic_path

    _, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())
