"""Check a built InterHand Studio folder the way a person would: start the app with no arguments under Xvfb (it
opens the bundled demo when the bundle has one, else an empty window), wait until it is on screen and its 3D view
has drawn, take screenshots (the app's ``--screenshot``), and look at them: with the demo (or ``--open`` files)
both hands must show in the 3D view in their two colours (core_model.render.HAND_COLOURS); without, the 3D view
must still have drawn (its white background). Also runs the bundled CLI (``interhand info``). Prints the folder's
size, its biggest parts and the start-up times; exit status 1 on any failure.

Usage: packaging/check_bundle.py [DIST_FOLDER] [--open FILE ...] [--out DIR] [--timeout S]
  DIST_FOLDER   default dist/InterHandStudio
  --open FILE   open these instead of the demo (then both hands are expected too)
  --out DIR     where the screenshots go (default build/check_bundle)
Needs numpy and Pillow (the project's venv has them) and, without $DISPLAY, xvfb-run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HAND_COLOURS = {"right (blue)": "#6fa8dc", "left (orange)": "#f6b26b"}  # = core_model.render.HAND_COLOURS
MIN_HAND_PIXELS = 400  # each hand covers thousands of pixels of the 3D view when drawn
XVFB = ["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24"]


def folder_size(path: Path) -> int:
    """Bytes under ``path``, symlinks not followed (as ``du -sb``)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            file = Path(root, name)
            if not file.is_symlink():
                total += file.stat().st_size
    return total


def report_size(app: Path) -> None:
    internal = app / "_internal"
    total = folder_size(app)
    print(f"size: {total / 2**20:,.0f} MiB in {app}  (du -sh: "
          f"{subprocess.run(['du', '-sh', str(app)], capture_output=True, text=True).stdout.split()[0]})")
    parts = []
    for entry in (internal.iterdir() if internal.is_dir() else app.iterdir()):
        size = folder_size(entry) if entry.is_dir() and not entry.is_symlink() else (
            0 if entry.is_symlink() else entry.stat().st_size)
        parts.append((size, entry.name))
    parts.sort(reverse=True)
    print("biggest parts of _internal/:")
    for size, name in parts[:15]:
        print(f"  {size / 2**20:8.1f} MiB  {name}")
    rest = sum(size for size, _ in parts[15:])
    print(f"  {rest / 2**20:8.1f} MiB  ({len(parts) - 15} more)")


def hue_mask(rgb, colour: str):
    """Pixels of ``colour`` under any shading: same hue (within 12 degrees), some saturation and brightness."""
    import numpy as np

    ref = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)], float) / 255.0
    img = rgb[..., :3].astype(float) / 255.0

    def hsv(x):
        mx, mn = x.max(-1), x.min(-1)
        delta = np.where(mx > mn, mx - mn, 1.0)
        r, g, b = x[..., 0], x[..., 1], x[..., 2]
        h = np.where(mx == r, (g - b) / delta % 6, np.where(mx == g, (b - r) / delta + 2, (r - g) / delta + 4))
        return h * 60.0, np.where(mx > 0, (mx - mn) / np.where(mx > 0, mx, 1.0), 0.0), mx

    h, s, v = hsv(img)
    h0, s0, _ = hsv(ref[None])
    dh = np.abs((h - h0[0] + 180.0) % 360.0 - 180.0)
    return (dh < 12.0) & (s > 0.35 * s0[0]) & (v > 0.2)


def analyse(window_png: Path, scene_png: Path, expect_hands: bool) -> list[str]:
    """Failures found in the screenshots (empty when they look right); prints what it measured."""
    import numpy as np
    from PIL import Image

    failures = []
    window = np.asarray(Image.open(window_png).convert("RGB"))
    scene = np.asarray(Image.open(scene_png).convert("RGB"))
    print(f"window screenshot {window.shape[1]}x{window.shape[0]}, 3D view {scene.shape[1]}x{scene.shape[0]}")
    if window.std() < 5:
        failures.append("the window screenshot is blank")
    white = float((scene.min(-1) > 245).mean())
    black = float((scene.max(-1) < 10).mean())
    print(f"3D view: {white:.0%} white background, {black:.0%} black")
    if black > 0.9 or scene.std() < 2:  # what a GL context that never rendered leaves
        failures.append(f"the 3D view has not drawn ({black:.0%} black, std {scene.std():.1f})")
    counts = {name: int(hue_mask(scene, colour).sum()) for name, colour in HAND_COLOURS.items()}
    for name, colour in HAND_COLOURS.items():
        print(f"3D view: {counts[name]} pixels of the {name} hand colour {colour}")
        if expect_hands and counts[name] < MIN_HAND_PIXELS:
            failures.append(f"the {name} hand is not in the 3D view ({counts[name]} pixels of {colour})")
    if not expect_hands and white < 0.3:
        failures.append(f"the empty 3D view is not its white background ({white:.0%} white)")
    if expect_hands and white < 0.1:
        print("WARNING: the hands fill the 3D view with hardly any background: the camera is inside or very close "
              "to them (look at the screenshot)")
    return failures


def window_mapped(title: str) -> bool:
    """Whether a window whose name starts with ``title`` is on the X display (xwininfo, when installed)."""
    out = subprocess.run(["xwininfo", "-root", "-tree"], capture_output=True, text=True).stdout
    return f'"{title}' in out


def run_app(app: Path, files: list[str], out: Path, env: dict, timeout: float) -> tuple[list[str], dict]:
    window_png, scene_png = out / "window.png", out / "scene.png"
    for png in (window_png, scene_png):
        png.unlink(missing_ok=True)
    cmd = [str(app / "interhand-studio"), *files, "--screenshot", str(window_png), "--screenshot", f"scene={scene_png}"]
    print("$ " + " ".join(cmd))
    poll_window = shutil.which("xwininfo") is not None
    times: dict[str, float] = {}
    start = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while proc.poll() is None and time.monotonic() - start < timeout:
        if poll_window and "window" not in times and window_mapped("InterHand Studio"):
            times["window"] = time.monotonic() - start
        if "screenshot" not in times and window_png.exists():
            times["screenshot"] = time.monotonic() - start
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
        output = proc.communicate()[0]
        return [f"the app did not finish within {timeout:.0f} s"], times | {"output": output}
    times["exit"] = time.monotonic() - start
    output = proc.stdout.read()
    failures = [] if proc.returncode == 0 else [f"the app exited with status {proc.returncode}"]
    if not window_png.exists() or not scene_png.exists():
        failures.append("the app wrote no screenshot")
    return failures, times | {"output": output}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("app", nargs="?", type=Path, default=ROOT / "dist" / "InterHandStudio")
    parser.add_argument("--open", nargs="+", default=[], metavar="FILE", help="files to open instead of the demo")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "check_bundle")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    if not os.environ.get("DISPLAY"):  # run this whole script under Xvfb: the app's timing then excludes Xvfb's
        if shutil.which("xvfb-run") is None:
            print("no $DISPLAY and no xvfb-run (apt-get install xvfb xauth)", file=sys.stderr)
            return 1
        return subprocess.call([*XVFB, sys.executable, *sys.argv])

    app = args.app.resolve()
    failures = [f"missing {app / exe}" for exe in ("interhand-studio", "interhand") if not (app / exe).is_file()]
    if failures:
        print("\n".join(f"FAIL: {f}" for f in failures))
        return 1
    report_size(app)
    demo = app / "_internal" / "interhand_assets" / "demo"
    has_demo = demo.is_dir() and any(demo.glob("*.npz"))
    checkpoints = sorted(p.name for p in (app / "_internal" / "interhand_assets" / "models").glob("*.pt"))
    print(f"bundled checkpoint(s): {', '.join(checkpoints) or 'none'}; bundled demo: {'yes' if has_demo else 'no'}")
    expect_hands = bool(args.open) or has_demo
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="interhand-check-") as home:
        # a fresh user: no saved window layout, no imported MANO (so OpenHand), nothing written to the real home
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "QT_PLUGIN_PATH",
                                                                 "QT_QPA_PLATFORM", "VIRTUAL_ENV")}
        env.update(HOME=home, XDG_CONFIG_HOME=f"{home}/config", XDG_DATA_HOME=f"{home}/data",
                   XDG_CACHE_HOME=f"{home}/cache")
        start = time.monotonic()
        info = subprocess.run([str(app / "interhand"), "info"], env=env, capture_output=True, text=True)
        print(f"$ interhand info  ({time.monotonic() - start:.1f} s, status {info.returncode})")
        print("  " + (info.stdout + info.stderr).strip().replace("\n", "\n  "))
        if info.returncode != 0:
            failures.append(f"interhand info exited with status {info.returncode}")

        app_failures, times = run_app(app, args.open, args.out, env, args.timeout)
    failures += app_failures
    output = times.pop("output").strip()
    if output:
        print("app output:\n  " + output[-4000:].replace("\n", "\n  "))
    print("start-up: " + ", ".join(f"{label} {times[key]:.1f} s" for key, label in (
        ("window", "window on screen"), ("screenshot", "3D view drawn and screenshot written"),
        ("exit", "process exited")) if key in times) + " (from process start; the screenshot waits 0.5 s more "
          "after the window is exposed)")
    if not app_failures:
        print(f"screenshots: {args.out / 'window.png'}, {args.out / 'scene.png'} "
              f"({'with ' + ('the opened files' if args.open else 'the demo') if expect_hands else 'empty window'})")
        failures += analyse(args.out / "window.png", args.out / "scene.png", expect_hands)
    for failure in failures:
        print(f"FAIL: {failure}")
    print("bundle check " + ("FAILED" if failures else "passed"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
