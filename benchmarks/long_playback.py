"""Memory over a long playback: a 10-minute result (the bundled demo's result and clip repeated to 18,000 frames
at 30 fps) opened with its video in the real main window and played at 1x with loop for a few minutes; the
process's resident memory is sampled every 10 s. Every frame is drawn in every panel, as benchmarks/playback.py
does. Needs a display (xvfb-run) and the demo (assets/demo/).

    xvfb-run -a -s "-screen 0 1280x1024x24" python benchmarks/long_playback.py --minutes 3 [--frames 18000]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from playback import new_window, open_all, run_loop  # this folder's: the window set up alike


def resident_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def long_copy(result_path: Path, video_path: Path, frames: int, folder: Path) -> tuple[Path, Path]:
    """The demo's result and video repeated to ``frames`` frames (windows and attention maps too)."""
    import cv2

    from core_model.results import Reconstruction, load_result, save_result

    demo = load_result(result_path)
    n, reps = demo.num_frames, -(-frames // demo.num_frames)
    per_frame = {name: np.concatenate([value] * reps)[:frames] for name, value in demo.arrays().items()
                 if name not in ("window_frames", "mhsa_attention", "mhca_attention")
                 and not name.startswith(("gt_", "refined_"))}
    windows = {}
    if demo.window_frames is not None:
        spans = np.concatenate([demo.window_frames + k * n for k in range(reps)])
        keep = spans[:, 1] <= frames
        windows = {"window_frames": spans[keep]}
        for name in ("mhsa_attention", "mhca_attention"):
            if getattr(demo, name) is not None:
                windows[name] = np.concatenate([getattr(demo, name)] * reps)[keep]
    video = folder / "long.mp4"
    capture = cv2.VideoCapture(str(video_path))
    clip = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        clip.append(image)
    height, width = clip[0].shape[:2]
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), demo.meta.fps, (width, height))
    for i in range(frames):
        writer.write(clip[i % len(clip)])
    writer.release()
    demo.meta.frame_count, demo.meta.source_path = frames, str(video)
    gt = {name: np.concatenate([value] * reps)[:frames] for name, value in demo.gt.items()}
    result = Reconstruction(meta=demo.meta, **per_frame, **windows, gt=gt)
    return save_result(result, folder / "long.npz"), video


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="how long to play")
    parser.add_argument("--frames", type=int, default=18000, help="frames of the long result (18,000: 10 min)")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between memory samples")
    args = parser.parse_args(argv)
    from viewer.app import demo_files

    demo = demo_files()
    if len(demo) < 2:
        parser.error("needs the bundled demo (assets/demo/)")
    folder = Path(tempfile.mkdtemp(prefix="interhand-long-playback-"))
    started = time.perf_counter()
    result, video = long_copy(demo[1], demo[0], args.frames, folder)
    print(f"made {result.name} ({result.stat().st_size / 2**20:.0f} MiB) and {video.name} "
          f"({video.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - started:.0f} s", flush=True)
    window = new_window(str(folder))
    before_open = resident_mib()
    if not open_all(window, [result]):
        return 2
    timeline = window.panels["timeline"]
    timeline.loop.setChecked(True)
    timeline.speed.setCurrentText("1x")
    run_loop(500)
    opened = resident_mib()
    timeline.start()
    samples = []
    begin = time.perf_counter()
    while time.perf_counter() - begin < args.minutes * 60:
        run_loop(round(args.every * 1000))
        samples.append((time.perf_counter() - begin, window.session.frame, resident_mib(), timeline.achieved_fps))
    timeline.pause()
    print(f"long playback of {result.name}: {args.frames} frames at {window.session.fps:g} fps "
          f"({args.frames / window.session.fps / 60:.0f} min), video {video.name}; {platform.node()}, load "
          f"{os.getloadavg()[0]:.1f}; resident memory before opening {before_open:.0f} MiB, opened {opened:.0f} MiB")
    print("| played | frame | resident MiB | achieved fps |\n| ---: | ---: | ---: | ---: |")
    for played, frame, mib, fps in samples:
        print(f"| {played:.0f} s | {frame} | {mib:.0f} | {fps:.1f} |")
    first = samples[min(2, len(samples) - 1)]  # after 30 s: the first frames' caches are warm
    print(f"from {first[0]:.0f} s to the end: {samples[-1][2] - first[2]:+.0f} MiB "
          f"({(samples[-1][2] - first[2]) / first[2]:+.1%}); largest {max(s[2] for s in samples):.0f} MiB")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
