"""Draw InterHand Studio's icon: two stylised hands, the right one blue and the left one orange (the app's hand
colours, core_model.render.HAND_COLOURS), their fingertips meeting, on a dark rounded square.

Writes packaging/icons/: interhand-studio.svg, interhand-studio-{256,128,48}.png (the freedesktop sizes),
interhand-studio.ico (Windows) and interhand-studio.icns (macOS). The outputs are committed; run this again only
to change the drawing:  .venv/bin/python packaging/make_icon.py
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import patches
from matplotlib.transforms import Affine2D
from PIL import Image

OUT = Path(__file__).resolve().parent / "icons"
NAME = "interhand-studio"
BACKGROUND = "#263238"
RIGHT, LEFT = "#6fa8dc", "#f6b26b"  # = core_model.render.HAND_COLOURS (not imported: no torch needed here)
OUTLINE = "#1b2327"
PNG_SIZES = (256, 128, 48)

# One hand in its own frame (a right hand seen from the palm side, fingers up; units of the icon's side):
# palm as a rounded box, then fingers as round-capped strokes (base x, base y, length, lean in degrees).
PALM = (-0.105, -0.16, 0.21, 0.2)  # x, y, width, height
FINGERS = ((-0.075, 0.03, 0.15, 8.0), (-0.025, 0.04, 0.18, 2.0), (0.025, 0.04, 0.17, -3.0),
           (0.072, 0.02, 0.13, -10.0))
THUMB = ((-0.095, -0.09), (-0.175, 0.0), (-0.19, 0.07))  # a bent stroke through three points
FINGER_WIDTH = 0.042  # of the icon's side
WRIST = ((-0.07, -0.16), (-0.06, -0.3), (0.06, -0.3), (0.07, -0.16))


def draw_hand(ax, colour: str, mirror: bool, centre: tuple[float, float], angle: float, side_px: float) -> None:
    """A stylised hand; ``mirror`` makes it the other hand. ``side_px`` converts icon units to points."""
    flip = Affine2D().scale(-1.0 if mirror else 1.0, 1.0)
    place = flip + Affine2D().rotate_deg(angle).translate(*centre)
    transform = place + ax.transData
    points_per_unit = side_px * 72.0 / 100.0  # figure made at dpi 100, side_px pixels wide
    width = FINGER_WIDTH * points_per_unit
    outline = width + 0.012 * points_per_unit

    def stroke(xy: np.ndarray, lw: float, colour_: str, z: float) -> None:
        ax.plot(xy[:, 0], xy[:, 1], color=colour_, lw=lw, solid_capstyle="round", solid_joinstyle="round",
                transform=transform, zorder=z)

    strokes = []
    for x, y, length, lean in FINGERS:
        tip = np.array([x, y]) + length * np.array([np.sin(np.radians(-lean)), np.cos(np.radians(lean))])
        strokes.append(np.array([[x, y], tip]))
    strokes.append(np.array(THUMB))
    for xy in strokes:  # outlines first, below every fill
        stroke(xy, outline, OUTLINE, 1)
    x, y, w, h = PALM
    for pad, face, z in ((0.012, OUTLINE, 1), (0.0, colour, 3)):
        ax.add_patch(patches.FancyBboxPatch((x - pad, y - pad), w + 2 * pad, h + 2 * pad,
                                            boxstyle=patches.BoxStyle.Round(pad=0.0, rounding_size=0.05 + pad),
                                            facecolor=face, edgecolor="none", transform=transform, zorder=z))
    wrist = np.array(WRIST)
    ax.add_patch(patches.Polygon(wrist, closed=True, facecolor=colour, edgecolor=OUTLINE,
                                 lw=0.012 * points_per_unit, transform=transform, zorder=0.5))
    for xy in strokes:
        stroke(xy, width, colour, 2)
    # a crease across the palm, so the shape reads as a hand at 48 px as well
    crease = np.array([[-0.07, -0.04], [0.0, -0.02], [0.07, -0.05]])
    stroke(crease, max(0.01 * points_per_unit, 0.6), OUTLINE, 4)


def figure(side_px: int):
    fig = plt.figure(figsize=(side_px / 100.0, side_px / 100.0), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.patch.set_alpha(0.0)
    ax.add_patch(patches.FancyBboxPatch((0.04, 0.04), 0.92, 0.92,
                                        boxstyle=patches.BoxStyle.Round(pad=0.0, rounding_size=0.18),
                                        facecolor=BACKGROUND, edgecolor="none", zorder=-1))
    # the right hand on the viewer's left, leaning in; the left hand mirrored; fingertips meet at the top
    draw_hand(ax, LEFT, True, (0.655, 0.52), 22.0, side_px)
    draw_hand(ax, RIGHT, False, (0.345, 0.52), -22.0, side_px)
    return fig


def main() -> None:
    OUT.mkdir(exist_ok=True)
    plt.rcParams["svg.hashsalt"] = NAME  # stable ids: the SVG only changes when the drawing does
    fig = figure(256)
    fig.savefig(OUT / f"{NAME}.svg", transparent=True, metadata={"Date": None, "Creator": "packaging/make_icon.py"})
    plt.close(fig)
    images = {}
    for size in (1024, *PNG_SIZES):
        fig = figure(size)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", transparent=True, dpi=100)
        plt.close(fig)
        images[size] = Image.open(io.BytesIO(buffer.getvalue())).convert("RGBA")
    for size in PNG_SIZES:
        images[size].save(OUT / f"{NAME}-{size}.png", optimize=True)
    images[256].save(OUT / f"{NAME}.ico", sizes=[(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (128, 128),
                                                 (256, 256)])
    images[1024].save(OUT / f"{NAME}.icns")
    for path in sorted(OUT.iterdir()):
        print(f"{path.stat().st_size:>8}  {path}")


if __name__ == "__main__":
    main()
