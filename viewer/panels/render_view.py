"""A 3D view as a plain widget: an off-screen pyvista Plotter rendered into an image that this widget paints, with
VTK's trackball camera driven by the widget's mouse and wheel events.

Why not pyvistaqt's QtInteractor (a QOpenGLWidget): a window holding an OpenGL widget is composed through OpenGL
on every repaint, and with software GL (Mesa llvmpipe, the machines without a GPU that many users and CI have)
that chain — VTK's framebuffer, a blit into Qt's, the composition, the swap — cost 15-20 ms per view and frame:
two views held playback of the demo near 18 fps. Off-screen, a view renders and reads back in 1-3 ms and the
window stays raster-painted (measured: benchmarks/playback.py, BENCHMARKS.md "Playback"). With a GPU the
read-back of a few hundred thousand pixels is a fraction of a millisecond.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets


class RenderView(QtWidgets.QWidget):
    """``plotter`` is a pyvista Plotter (off-screen) sized to this widget in device pixels times ``scale``.
    Changes to its scene show after :meth:`request_render`; a render happens at most once per paint, only when
    asked for. A scale below 1 renders fewer pixels and stretches the image over the widget (for playback in
    software GL); :meth:`render_image` always renders at full resolution."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        import pyvista as pv
        from vtkmodules.vtkCommonCore import vtkUnsignedCharArray
        from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera
        from vtkmodules.vtkRenderingUI import vtkGenericRenderWindowInteractor

        self.scale = 1.0
        self.plotter = pv.Plotter(off_screen=True, window_size=self._render_size())
        self.plotter.render_window.SetMultiSamples(0)  # smooth shading and outlines read well without MSAA
        # A plotter that was never show()n treats its first render as a first showing: pyvista would move the
        # camera to its default and skip plotter.render(). This one is shown by the widget (pyvistaqt's
        # QtInteractor sets the same flag; pyvista has no public switch for it).
        self.plotter._first_time = False
        self.interactor = vtkGenericRenderWindowInteractor()
        self.interactor.SetRenderWindow(self.plotter.render_window)
        self.interactor.SetInteractorStyle(vtkInteractorStyleTrackballCamera())
        # The style asks the interactor to render after each camera move; this widget renders in its paint event.
        self.interactor.EnableRenderOff()
        self.interactor.AddObserver("RenderEvent", lambda *_: self.request_render())
        self.interactor.Initialize()
        self._pixels = vtkUnsignedCharArray()
        self._image: QtGui.QImage | None = None
        self._image_pixels: np.ndarray | None = None  # the buffer ``_image`` paints from
        self._stale = True
        self.setAttribute(QtCore.Qt.WidgetAttribute.WA_OpaquePaintEvent)  # the image covers every pixel
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.ClickFocus)
        self.setMinimumSize(80, 60)

    def sizeHint(self) -> QtCore.QSize:  # noqa: N802 (Qt's name)
        return QtCore.QSize(400, 400)

    def _render_size(self, scale: float | None = None) -> tuple[int, int]:
        ratio = self.devicePixelRatioF() * (self.scale if scale is None else scale)
        return max(1, round(self.width() * ratio)), max(1, round(self.height() * ratio))

    def _resize_window(self, size: tuple[int, int]) -> None:
        if tuple(self.plotter.render_window.GetSize()) != size:
            self.plotter.render_window.SetSize(*size)
            self.interactor.SetSize(*size)
            self.interactor.ConfigureEvent()

    def set_scale(self, scale: float) -> None:
        """Render ``scale`` times the widget's pixels in each direction from the next paint on."""
        if scale != self.scale:
            self.scale = scale
            self._resize_window(self._render_size())
            self.request_render()

    def request_render(self) -> None:
        """Render at the next paint (several requests before it cost one render)."""
        self._stale = True
        self.update()

    def on_interaction(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever the user turns, pans or zooms this view's camera."""
        self.interactor.AddObserver("InteractionEvent", lambda *_: callback())

    def renderer_name(self) -> str:
        """The OpenGL renderer string of this view's context (``llvmpipe (...)`` for Mesa's software GL)."""
        report = self.plotter.render_window.ReportCapabilities()
        return next((line.split(":", 1)[1].strip() for line in report.splitlines()
                     if line.startswith("OpenGL renderer string")), "")

    def _render_rgba(self) -> np.ndarray:
        """Render at the render window's size; RGBA uint8 [H, W, 4] bottom row first (OpenGL's order), a view of
        a buffer that the next render overwrites."""
        from vtkmodules.util.numpy_support import vtk_to_numpy

        window = self.plotter.render_window
        self.plotter.render()
        window.MakeCurrent()  # read this view's pixels, not whichever context rendered last
        width, height = window.GetSize()
        window.GetRGBACharPixelData(0, 0, width - 1, height - 1, 1, self._pixels)  # the shown (front) buffer
        return vtk_to_numpy(self._pixels).reshape(height, width, 4)

    def render_image(self) -> np.ndarray:
        """Render now, at full resolution, and return the view as RGB uint8 [H, W, 3], top row first."""
        reduced = self.scale != 1.0
        if reduced:
            self._resize_window(self._render_size(1.0))
        rgb = np.ascontiguousarray(self._render_rgba()[::-1, :, :3])
        if reduced:
            self._resize_window(self._render_size())
            self._stale = True
        return rgb

    def _refresh(self) -> None:
        rgba = self._render_rgba()
        height, width = rgba.shape[:2]
        # Painted as it lies in memory (bottom row first) under a flipped painter: no copy. RGBX: VTK's alpha is
        # not an opacity here.
        self._image = QtGui.QImage(rgba.data, width, height, 4 * width, QtGui.QImage.Format.Format_RGBX8888)
        self._image_pixels = rgba  # the QImage does not own its pixels: keep them alive with it
        self._stale = False

    # ---- Qt events -----------------------------------------------------------------------------------------
    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 (Qt's name)
        if self._stale or self._image is None:
            self._refresh()
        painter = QtGui.QPainter(self)
        if self.scale != 1.0:
            painter.setRenderHint(QtGui.QPainter.RenderHint.SmoothPixmapTransform)
        painter.translate(0, self.height())
        painter.scale(1.0, -1.0)
        painter.drawImage(QtCore.QRectF(0, 0, self.width(), self.height()), self._image)
        painter.end()

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:  # noqa: N802 (Qt's name)
        self._resize_window(self._render_size())
        self.request_render()
        super().resizeEvent(event)

    def _locate(self, event: QtGui.QSinglePointEvent) -> None:
        ratio = self.devicePixelRatioF() * self.scale
        point = event.position()
        mods = event.modifiers()
        self.interactor.SetEventInformationFlipY(round(point.x() * ratio), round(point.y() * ratio),
                                                 int(bool(mods & QtCore.Qt.KeyboardModifier.ControlModifier)),
                                                 int(bool(mods & QtCore.Qt.KeyboardModifier.ShiftModifier)))

    # VTK's interactor event names of the buttons it knows, with "Press" or "Release" filled in
    _BUTTONS: ClassVar[dict] = {QtCore.Qt.MouseButton.LeftButton: "LeftButton{}Event",
                                QtCore.Qt.MouseButton.MiddleButton: "MiddleButton{}Event",
                                QtCore.Qt.MouseButton.RightButton: "RightButton{}Event"}

    def _button(self, event: QtGui.QMouseEvent, action: str) -> bool:
        """Hand a press or release of a button VTK knows to the interactor; False for other buttons."""
        name = self._BUTTONS.get(event.button())
        if name is None:
            return False
        self._locate(event)
        getattr(self.interactor, name.format(action))()
        return True

    def mousePressEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802 (Qt's name)
        if not self._button(event, "Press"):
            super().mousePressEvent(event)

    def mouseReleaseEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802 (Qt's name)
        if not self._button(event, "Release"):
            super().mouseReleaseEvent(event)

    def mouseMoveEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802 (Qt's name)
        self._locate(event)
        self.interactor.MouseMoveEvent()

    def wheelEvent(self, event: QtGui.QWheelEvent) -> None:  # noqa: N802 (Qt's name)
        self._locate(event)
        steps = event.angleDelta().y()
        if steps > 0:
            self.interactor.MouseWheelForwardEvent()
        elif steps < 0:
            self.interactor.MouseWheelBackwardEvent()

    def release(self) -> None:
        """Free the off-screen render window (the widget is going away)."""
        self.plotter.close()
