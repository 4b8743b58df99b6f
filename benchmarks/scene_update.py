"""What a frame costs the 3D panel with one to four results compared: open results in the real main window, show
the first N of the 3D panel's Results list, and time, for each frame in turn, the panel's frame handler plus the
synchronous paint of every view on screen (each view renders its scene and reads it back). Printed per N: median
and 90th percentile in milliseconds (and the median CPU time, which other work on the machine moves less), at full
resolution and at the playback resolution of software GL.

    xvfb-run -a -s "-screen 0 1280x1024x24" python benchmarks/scene_update.py [RESULT.npz ...] [--frames 120]

Fewer than four results (a result's refinement counts as one) are made up with copies of the last result file, as
other methods' results would be. Without files it times the bundled demo (assets/demo/). "follow hands" is on.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from playback import new_window, open_all, run_loop, show_results  # this folder's: the window set up alike


def time_frames(window, frames: range) -> tuple[list[float], list[float]]:
    """Milliseconds per frame, wall clock and CPU (this process's threads, software GL's included: less moved by
    other work on the machine), of the 3D panel's handler and the paint of its views on screen."""
    scene = window.panels["scene"]
    wall, cpu = [], []
    for frame in frames:
        start, start_cpu = time.perf_counter(), time.process_time()
        scene.show_frame(frame)
        for view in scene.shown_views():
            view.view.repaint()
        wall.append(1000 * (time.perf_counter() - start))
        cpu.append(1000 * (time.process_time() - start_cpu))
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", type=Path, help="result files (.npz) and optionally their video")
    parser.add_argument("--frames", type=int, default=120, help="frames to time per configuration")
    args = parser.parse_args(argv)
    from viewer.app import demo_files
    from viewer.panels.shown import MAX_SHOWN

    files = args.files or demo_files()
    if not files:
        parser.error("no files given and no demo installed (assets/demo/)")
    window = new_window(tempfile.mkdtemp(prefix="interhand-scene-settings-"))
    if not open_all(window, files):
        return 2
    scene = window.panels["scene"]
    show_results(window, MAX_SHOWN, [p for p in files if p.suffix == ".npz"][-1])
    scene.follow.setChecked(True)
    primary = window.session.primary.result
    frames = range(min(args.frames, primary.num_frames))
    rows = []
    for count in range(1, MAX_SHOWN + 1):
        scene.results_list.set_checked(scene.results_list.entries[:count])
        for playing in (False, True):
            scene.set_playing(playing)
            run_loop(300)  # settle the layout
            time_frames(window, range(min(5, len(frames))))  # warm up
            wall, cpu = time_frames(window, frames)
            size = scene.shown_views()[0].plotter.window_size
            rows.append((count, "playback" if playing else "full", size, statistics.median(wall),
                         sorted(wall)[int(0.9 * (len(wall) - 1))], statistics.median(cpu)))
        scene.set_playing(False)
    print(f"3D panel frame update, {files[-1].name}: {len(frames)} frames, {primary.num_vertices} vertices per hand, "
          f"{'software' if scene.software_gl else 'hardware'} GL ({scene.main.view.renderer_name()}); "
          f"{platform.node()}, window {window.width()}x{window.height()}")
    print("| results shown | resolution | first view (px) | median ms | p90 ms | median CPU ms |\n"
          "| ---: | --- | --- | ---: | ---: | ---: |")
    for count, resolution, size, median, p90, cpu in rows:
        print(f"| {count} | {resolution} | {size[0]}x{size[1]} | {median:.1f} | {p90:.1f} | {cpu:.1f} |")
    sys.stdout.flush()
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
