"""Many short clips: ``interhand batch`` against a shell loop of ``interhand run``, side by side in one run.

    python benchmarks/batch.py [--clips 20] [--frames 75] [--work /tmp/interhand-batch-bench] [--real DIR]
                               [--no-ray] [--no-variants]

The clips are cut (OpenCV, mp4v) from the real two-hand clips in ``--real`` (default ``../shared/real-media``
when it exists; they never leave the work folder) and from the shipped demo: ``--frames`` frames each (75 = 2.5 s
at 30 fps), spread over each source. Every method reconstructs all of them with the shipped model (the default of
``interhand run``) on the CPU, one after the other, each as a fresh command:

- ``loop``: ``for v in clips/*.mp4; do interhand run "$v" -o loop/NAME.npz; done`` (a process, a model and a
  MediaPipe per video, one video at a time);
- ``batch``: ``interhand batch clips -o batch`` (the defaults: detection processes ahead of the model worker);
- ``batch --detectors 1`` (with ``--variants``): one detection process only;
- ``batch --ray``: the same on a local Ray cluster started by the command (its start-up included).

Printed: wall time, videos/minute and the speed-up over the loop, with the load average around each; then a check
that the batch's results are the loop's (the same detection and network: equal arrays).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REAL = ROOT.parent / "shared" / "real-media"
DEMO = ROOT / "assets" / "demo" / "demo.mp4"
SKIP = {"two_hands_rock_sign.mp4": 12}  # its first frames show no hand


def cut_clips(real: Path | None, count: int, frames: int, folder: Path) -> list[Path]:
    """``count`` clips of ``frames`` frames, shared out over the sources by their length, spread over each."""
    import cv2
    import numpy as np

    sources = sorted(real.glob("*.mp4")) if real is not None and real.is_dir() else []
    sources.append(DEMO)
    lengths = {}
    for s in sources:
        capture = cv2.VideoCapture(str(s))
        lengths[s] = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) - SKIP.get(s.name, 0)
        capture.release()
    total = sum(lengths.values())
    share = {s: max(1, round(count * n / total)) for s, n in lengths.items()}
    while sum(share.values()) > count:
        share[max(share, key=share.get)] -= 1
    while sum(share.values()) < count:
        share[max(lengths, key=lambda s: lengths[s] / share[s])] += 1
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for source, k in share.items():
        capture = cv2.VideoCapture(str(source))
        fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
        video = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            video.append(frame)
        capture.release()
        video = video[SKIP.get(source.name, 0):]
        n = min(frames, len(video))
        for i, start in enumerate(np.linspace(0, len(video) - n, k).round().astype(int)):
            path = folder / f"{source.stem}_{i:02d}.mp4"
            h, w = video[0].shape[:2]
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
            for frame in video[start:start + n]:
                writer.write(frame)
            writer.release()
            clips.append(path)
    return clips


def interhand(*args: str) -> list[str]:
    return [sys.executable, "-m", "core_model.cli", *args]


def timed(label: str, commands: list[list[str]], log: Path) -> dict:
    load = os.getloadavg()[0]
    start = time.perf_counter()
    codes = []
    with open(log, "a") as out:
        for command in commands:
            out.write(f"$ {' '.join(command)}\n")
            out.flush()
            codes.append(subprocess.run(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                        env={**os.environ, "PYTHONPATH": str(ROOT)}).returncode)
    wall = time.perf_counter() - start
    print(f"  {label}: {wall:.1f} s (exit {sorted(set(codes))})", flush=True)
    return {"label": label, "wall": wall, "codes": codes, "load": (load, os.getloadavg()[0])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--frames", type=int, default=75, help="frames per clip (75: 2.5 s at 30 fps)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/interhand-batch-bench"))
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL if DEFAULT_REAL.is_dir() else None)
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray run")
    parser.add_argument("--no-variants", action="store_true", help="skip the one-detector batch")
    args = parser.parse_args()

    if args.work.exists():
        shutil.rmtree(args.work)
    clips = cut_clips(args.real, args.clips, args.frames, args.work / "clips")
    log = args.work / "log.txt"
    print(f"{len(clips)} clips of {args.frames} frames in {args.work / 'clips'}; {os.cpu_count()} cores, "
          f"{platform.processor() or platform.machine()}; output of the commands in {log}", flush=True)
    runs = [timed("loop of interhand run", [interhand("run", str(c), "-o", str(args.work / "loop" / f"{c.stem}.npz"))
                                            for c in clips], log)]
    runs.append(timed("interhand batch", [interhand("batch", str(args.work / "clips"), "-o",
                                                    str(args.work / "batch"))], log))
    if not args.no_variants:
        runs.append(timed("interhand batch --detectors 1",
                          [interhand("batch", str(args.work / "clips"), "-o", str(args.work / "batch1"),
                                     "--detectors", "1")], log))
    if not args.no_ray:
        runs.append(timed("interhand batch --ray", [interhand("batch", str(args.work / "clips"), "-o",
                                                              str(args.work / "ray"), "--ray")], log))
    runs.append(timed("interhand batch, rerun (all skipped)", [interhand("batch", str(args.work / "clips"), "-o",
                                                                         str(args.work / "batch"))], log))

    loop = runs[0]["wall"]
    print("\n| method | videos | wall (s) | videos/minute | vs the loop | load average before / after |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for run in runs:
        print(f"| {run['label']} | {len(clips)} | {run['wall']:.1f} | {60 * len(clips) / run['wall']:.1f} | "
              f"{loop / run['wall']:.2f}x | {run['load'][0]:.1f} / {run['load'][1]:.1f} |")

    import numpy as np

    from core_model.results import load_result

    worst = 0.0
    compared = 0
    for clip in clips:
        a, b = args.work / "loop" / f"{clip.stem}.npz", args.work / "batch" / f"{clip.stem}.npz"
        if a.is_file() and b.is_file():
            va, vb = load_result(a).vertices, load_result(b).vertices
            worst = max(worst, float(np.nanmax(np.abs(va - vb))) if np.isfinite(va).any() else 0.0)
            compared += 1
    print(f"\nbatch against loop: {compared} results compared, largest vertex difference {worst * 1000:.4f} mm")
    print((args.work / "batch" / "summary.csv").read_text() if (args.work / "batch" / "summary.csv").exists() else "")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
