"""Playback rate of the viewer: open a result (and its video) in the real main window, play it with loop for a
few seconds at the video's fps, and print the achieved rate; every frame is drawn in every panel (video with
overlay, both 3D views, chart cursors, attention), none skipped. Needs a display (run under xvfb-run).

    xvfb-run -a -s "-screen 0 1280x1024x24" python benchmarks/playback.py RESULT.npz [VIDEO] [--seconds 5]

Without files it plays the bundled demo (assets/demo/) when it is installed. ``--views N`` compares N results in
the 3D panel (a view each; benchmarks/scene_update.py says how fewer are made up).
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
from pathlib import Path


def run_loop(ms: int) -> None:
    """Run the Qt event loop for ``ms`` (a QEventLoop, not a processEvents() busy loop: PySide6 6.12 on
    Python 3.11 leaks a reference to None per processEvents() call, and hundreds of thousands of calls abort)."""
    from PySide6 import QtCore

    loop = QtCore.QEventLoop()
    QtCore.QTimer.singleShot(ms, loop.quit)
    loop.exec()


def new_window(settings_folder: str):
    """The app and a shown MainWindow whose settings go to ``settings_folder`` (the user's are left alone)."""
    from PySide6 import QtCore

    from viewer.app import create_app

    create_app()
    QtCore.QSettings.setDefaultFormat(QtCore.QSettings.Format.IniFormat)
    QtCore.QSettings.setPath(QtCore.QSettings.Format.IniFormat, QtCore.QSettings.Scope.UserScope, settings_folder)
    from viewer.main_window import MainWindow

    window = MainWindow()
    window.show()
    return window


def open_all(window, files: list[Path]) -> bool:
    """Open ``files`` in ``window``; False (and why, on stderr) at the first that cannot be opened."""
    for path in files:
        if not window.open_path(path):
            print(f"cannot open {path}: {window.last_error}", file=sys.stderr)
            return False
    return True


def show_results(window, count: int, last: Path) -> None:
    """Show ``count`` results side by side in the 3D panel, made up with copies of ``last`` where fewer are open."""
    scene = window.panels["scene"]
    copies = Path(tempfile.mkdtemp(prefix="interhand-playback-copies-"))
    while len(scene.results_list.entries) < count:
        copy = copies / f"{last.stem}-copy{len(scene.results_list.entries)}.npz"
        shutil.copyfile(last, copy)
        window.open_path(copy)
    scene.results_list.set_checked(scene.results_list.entries[:count])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", type=Path, help="result file (.npz) and optionally its video")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to play each configuration")
    parser.add_argument("--speed", default="1x", help="playback speed, one of the timeline's (1x: the video's "
                        "fps; 4x shows the rate the viewer could reach)")
    parser.add_argument("--views", type=int, default=1, help="results the 3D panel compares, one view each (1-4)")
    args = parser.parse_args(argv)
    from viewer.app import demo_files

    files = args.files or demo_files()
    if not files:
        parser.error("no files given and no demo installed (assets/demo/)")
    window = new_window(tempfile.mkdtemp(prefix="interhand-playback-settings-"))
    if not open_all(window, files):
        return 2
    if args.views > 1:
        show_results(window, args.views, [p for p in files if p.suffix == ".npz"][-1])
    timeline = window.panels["timeline"]
    timeline.loop.setChecked(True)
    if timeline.speed.findText(args.speed) < 0:
        parser.error(f"--speed: {args.speed!r} is not one of the timeline's speeds")
    timeline.speed.setCurrentText(args.speed)
    rows = []
    for label, hidden in (("all panels", ()), ("without attention and charts", ("attention", "charts"))):
        for key in hidden:
            window.docks[key].hide()
        run_loop(500)  # settle the layout
        timeline.start()
        run_loop(round(args.seconds * 1000))
        achieved = timeline.achieved_fps
        timeline.pause()
        rows.append((label, window.session.fps * timeline.speed_factor, achieved))
        for key in hidden:
            window.docks[key].show()
    primary = window.session.primary.result
    has_video = window.session.video is not None
    print(f"playback of {files[0].name}: {primary.num_frames} frames, {primary.num_vertices} vertices per hand, "
          f"video {'yes' if has_video else 'no'}, {args.views} result(s) in the 3D panel; {platform.node()}, "
          f"{sys.platform}, window 1280x900")
    print("| panels shown | target fps | achieved fps |\n| --- | ---: | ---: |")
    for label, target, achieved in rows:
        print(f"| {label} | {target:.1f} | {achieved:.1f} |")
    sys.stdout.flush()
    window.close()
    return 0

if __name__ == "__main__":
    sys.exit(main())
