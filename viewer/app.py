"""``interhand-studio [VIDEO | RESULT.npz | WORKSPACE.json ...]``: the desktop application. With no argument it
opens the bundled demo (``assets/demo/``: a clip and its result) when it is installed, else an empty window
that says how to open a file."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6 import QtCore, QtWidgets

NO_DISPLAY_EXIT = 2
# Qt platforms that draw without a display server (QT_QPA_PLATFORM, the part before any ":options").
HEADLESS_PLATFORMS = ("offscreen", "minimal", "vnc", "linuxfb", "eglfs", "vkkhrdisplay", "minimalegl")


def no_display_message(reason: str) -> str:
    """What to say when the window cannot open: ``reason``, then what to run instead."""
    return (f"interhand-studio: cannot open a window: {reason}.\n"
            "  - on a machine without a screen, run the app on a virtual display:  xvfb-run -a interhand-studio "
            "[FILES]\n"
            "  - or use the headless commands, which do everything but the interactive views:\n"
            "      interhand run VIDEO -o RESULT.npz [--refine]\n"
            "      interhand figures multiview|accel|attention RESULT.npz ... --out FIGURE.pdf\n"
            "      interhand export RESULT.npz --format obj|ply|glb --out DIR\n"
            "  - over SSH, connect with X forwarding (ssh -X) so that DISPLAY is set")


def missing_display(environ: dict[str, str] | None = None, platform: str | None = None) -> str | None:
    """Why no window can open, or None: on Linux and other X11/Wayland systems, neither DISPLAY nor
    WAYLAND_DISPLAY is set and QT_QPA_PLATFORM does not name a platform that needs no display. Qt itself would
    abort (exit status 134) with its xcb message and a hint about libxcb-cursor0 that does not apply."""
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if platform.startswith(("win", "darwin", "cygwin")):
        return None
    chosen = environ.get("QT_QPA_PLATFORM", "").split(":")[0].strip().lower()
    if chosen in HEADLESS_PLATFORMS:
        return None
    if chosen.startswith("wayland"):
        return None if environ.get("WAYLAND_DISPLAY") else "QT_QPA_PLATFORM asks for Wayland, but WAYLAND_DISPLAY " \
            "is not set"
    if environ.get("DISPLAY") or (not chosen and environ.get("WAYLAND_DISPLAY")):
        return None
    return "no display was found (DISPLAY is not set" + ("" if chosen else " and neither is WAYLAND_DISPLAY") + ")"


def demo_files() -> list[Path]:
    """The demo's video first, then its result files; empty when no demo is installed."""
    from core_model.assets import assets_root
    from core_model.pipeline.video import VIDEO_SUFFIXES

    folder = assets_root() / "demo"
    if not folder.is_dir():
        return []
    videos = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    results = sorted(folder.glob("*.npz"))
    return (videos[:1] + results) if results else []


def _qapplication() -> QtWidgets.QApplication:
    """A new QApplication; where Qt cannot reach the display it names (a DISPLAY left over from an ended session,
    an X server that went away), the no-display message and exit status NO_DISPLAY_EXIT instead of Qt's abort.
    Qt's messages while it starts are kept and written after, or, when it fails for another reason, before the
    process ends as Qt would have ended it."""
    messages: list[str] = []

    def hold(kind: QtCore.QtMsgType, context: QtCore.QMessageLogContext, message: str) -> None:
        category = context.category if context.category and context.category != "default" else ""
        messages.append(f"{category}: {message}" if category else message)
        if kind != QtCore.QtMsgType.QtFatalMsg:
            return
        unreachable = [m for m in messages if "could not connect to display" in m]
        if unreachable:
            display = unreachable[0].rsplit("display", 1)[1].strip() or "(none)"
            sys.stderr.write(no_display_message(f"the display {display} could not be reached") + "\n")
        else:  # not about the display: Qt's own words, hints included
            sys.stderr.write("\n".join(messages) + "\n")
        sys.stderr.flush()
        os._exit(NO_DISPLAY_EXIT if unreachable else 134)

    QtCore.qInstallMessageHandler(hold)
    try:
        app = QtWidgets.QApplication(sys.argv[:1])
    finally:
        QtCore.qInstallMessageHandler(None)
    if messages:
        sys.stderr.write("\n".join(messages) + "\n")
    return app


def create_app() -> QtWidgets.QApplication:
    import pyqtgraph as pg

    app = QtWidgets.QApplication.instance() or _qapplication()
    app.setApplicationName("InterHand Studio")
    app.setOrganizationName("InterHand Studio")
    pg.setConfigOptions(antialias=True, imageAxisOrder="row-major")
    return app


def screenshot_when_drawn(window, shots: Sequence[str], settle_ms: int = 500) -> None:
    """Once ``window`` is on screen and has drawn what it opened: save each shot and quit the app (exit status 0,
    or 1 when an image cannot be written). A shot is ``PATH`` (the whole window) or ``PANEL=PATH`` with PANEL one
    of the Export > Screenshot keys (video, scene, timeline, charts, attention, window). For automation: the
    bundle check (packaging/check_bundle.py), documentation images."""
    from viewer.main_window import PANELS

    app = QtWidgets.QApplication.instance()
    targets = []
    for shot in shots:
        key, sep, path = shot.partition("=")
        targets.append((key, Path(path)) if sep and key in {*PANELS, "window"} else ("window", Path(shot)))

    def shoot() -> None:
        app.processEvents()
        try:
            for key, path in targets:
                window.exports.screenshot(key, path)
        except OSError as exc:
            print(exc, file=sys.stderr)
            app.exit(1)
            return
        app.exit(0)

    def wait_exposed() -> None:
        handle = window.windowHandle()
        if handle is None or not handle.isExposed():
            QtCore.QTimer.singleShot(50, wait_exposed)
            return
        QtCore.QTimer.singleShot(settle_ms, shoot)

    QtCore.QTimer.singleShot(0, wait_exposed)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="interhand-studio", description="InterHand Studio desktop application")
    parser.add_argument("files", nargs="*", type=Path,
                        help="a video, result files (.npz) and/or a workspace (.json); none: the bundled demo")
    parser.add_argument("--screenshot", action="append", metavar="[PANEL=]PNG",
                        help="for automation: once the window has drawn what it opened, save the window (or PANEL: "
                             "video, scene, timeline, charts, attention) to PNG and quit; repeatable")
    args = parser.parse_args(argv)
    reason = missing_display()
    if reason is not None:
        print(no_display_message(reason), file=sys.stderr)
        return NO_DISPLAY_EXIT
    app = create_app()
    from viewer.main_window import MainWindow

    window = MainWindow()
    window.show()
    for path in args.files or demo_files():
        window.open_path(path)
    if args.screenshot:
        screenshot_when_drawn(window, args.screenshot)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
