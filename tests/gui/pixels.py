"""What the GUI tests look for in rendered images."""

from __future__ import annotations

import numpy as np
from PySide6 import QtGui


def red_pixels(image: np.ndarray) -> int:
    """Pixels of the penetration red (#d62728, shaded): strong red, little green and blue."""
    rgb = image[..., :3].astype(int)
    return int(((rgb[..., 0] > 120) & (rgb[..., 0] - rgb[..., 1] > 90) & (rgb[..., 0] - rgb[..., 2] > 90)).sum())


def hand_pixels(image: np.ndarray) -> tuple[float, float]:
    """Shares of blue (right hand) and orange (left hand) pixels."""
    rgb = image[..., :3].reshape(-1, 3).astype(int)
    blue = (rgb[:, 2] > rgb[:, 0] + 40).mean()
    orange = ((rgb[:, 0] > rgb[:, 2] + 60) & (rgb[:, 1] > rgb[:, 2] + 20)).mean()
    return float(blue), float(orange)


def qimage_array(image: QtGui.QImage) -> np.ndarray:
    image = image.convertToFormat(QtGui.QImage.Format.Format_RGB888)
    width, height, stride = image.width(), image.height(), image.bytesPerLine()
    return np.frombuffer(image.constBits(), np.uint8).reshape(height, stride)[:, :3 * width].reshape(
        height, width, 3).copy()
