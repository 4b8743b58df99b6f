"""The 3D view: both hands of the current frame in their colours, penetrating vertices red, smooth shading,
ground truth as a light grey "ghost" (a faint translucent surface with its outline); camera presets, reset, and a
linked second view (the paper's "alternative view"). When the shown result carries the test-time refinement's
arrays (``result.refined``), "refined (right view)" turns the second view into the refined hands of the same frame
seen from the main view's camera: the network's result and the refined one side by side.

The meshes both views draw, and the ground truth's outline, are viewer.panels.hand_polydata's.
"""

from __future__ import annotations

import functools

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from core_model.render import fit_source_camera, set_view
from viewer.panels.hand_polydata import HandPolyData, Silhouette
from viewer.session import LoadedResult, Session

VIEW_PRESETS = ("camera", "front", "side", "top", "alternative")
# While the timeline plays in software GL, the 3D views render this fraction of their pixels in each direction and
# are stretched to size (ParaView's "image reduction factor" during interaction): drawing the shaded hands cost
# Mesa llvmpipe ~6-11 ms per view and frame at full size, which kept playback of the demo under 20 fps. Any frame
# that stays on screen (pause, scrub, screenshot, export) is drawn at full resolution; a GPU always is.
PLAYBACK_SCALE = 0.5
SOFTWARE_GL = ("llvmpipe", "softpipe", "swrast", "swiftshader", "software rasterizer")
# Ground truth is drawn lightly so that the prediction stays readable through it: a wireframe of every triangle
# hid the shaded prediction behind a dense grid. A faint surface says where the true hand is, its silhouette
# (from each view's camera) gives its shape. Grey, never red: red means penetration. Translucency costs one
# blended pass (no depth peeling, no OIT), the silhouette a pass over the hand's edges when the hand or camera moves.
# The faint surface is unlit (one flat grey): at this opacity shading hardly shows, and lighting it with the five
# lights of the light kit cost software GL ~2 ms per view and frame; the outline gives the shape.
GT_COLOUR = "#9a9a9a"
GT_OPACITY = 0.18
GT_OUTLINE = "#6e6e6e"
GT_OUTLINE_WIDTH = 1.5
GT_DEPTH_OFFSET = (4.0, 40.0)  # glPolygonOffset (factor, units) of the ground-truth surface, relative to the rest
LABEL_SIZE = 13  # points
REFINED_TIP = ("The second view shows the test-time refinement's hands of this frame from the main view's camera "
               "(penetrating vertices red); the main view the network's")
NO_REFINED_TIP = "The shown result holds no refinement (made by interhand run --refine)"
TRUTH_TIP = "Ground-truth meshes as a faint grey ghost with its outline"
NO_TRUTH_TIP = "The shown result has no ground truth (only results of sequences with annotations do)"


def camera_state(plotter) -> dict:
    cam = plotter.camera
    return {"position": list(cam.position), "focal_point": list(cam.focal_point), "up": list(cam.up),
            "view_angle": float(cam.view_angle), "parallel": bool(cam.parallel_projection)}


def widen_to_fit(camera, points: np.ndarray | None, size: tuple[int, int], margin: float = 1.08) -> None:
    """Widen ``camera`` (its view angle, or its parallel scale) until ``points`` [N, 3] lie inside a view of
    ``size`` (width, height) pixels with ``margin`` to spare; never narrows it. Points behind the camera are left
    out (no angle holds them)."""
    if points is None or not len(points):
        return
    position, focal = np.array(camera.GetPosition()), np.array(camera.GetFocalPoint())
    ahead = focal - position
    ahead /= max(np.linalg.norm(ahead), 1e-12)
    right = np.cross(ahead, np.array(camera.GetViewUp()))
    right /= max(np.linalg.norm(right), 1e-12)
    up = np.cross(right, ahead)
    rel = points - position
    across, upward, depth = np.abs(rel @ right), np.abs(rel @ up), rel @ ahead
    aspect = size[0] / max(size[1], 1)
    if camera.GetParallelProjection():  # the parallel scale is half the view's height
        needed = margin * float(max(upward.max(), across.max() / aspect))
        camera.SetParallelScale(max(camera.GetParallelScale(), needed))
        return
    front = depth > 1e-6
    if not front.any():
        return
    half = margin * float(max((upward[front] / depth[front]).max(), (across[front] / depth[front]).max() / aspect))
    needed = min(2 * float(np.degrees(np.arctan(half))), 150.0)
    if needed > camera.GetViewAngle():
        camera.SetViewAngle(needed)


def set_camera_state(plotter, state: dict) -> None:
    cam = plotter.camera
    cam.position, cam.focal_point, cam.up = state["position"], state["focal_point"], state["up"]
    cam.view_angle = state["view_angle"]
    cam.parallel_projection = state["parallel"]
    plotter.reset_camera_clipping_range()


class HandView(QtWidgets.QWidget):
    """One RenderView showing the shared meshes."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        import pyvista as pv

        from viewer.panels.render_view import RenderView

        self.view = RenderView(self)
        self.plotter = self.view.plotter
        self.plotter.set_background("white")
        # One light at the camera: the five of pyvista's light kit cost software GL ~1.2 ms per view and frame, and
        # a headlight keeps the side of the hands the user looks at lit from every preset and after any turn.
        self.plotter.remove_all_lights()
        self.plotter.add_light(pv.Light(light_type="headlight"))
        # The one translucent surface (ground truth) is blended directly: order-independent transparency, VTK's
        # default without depth peeling, adds full-window passes per render that software GL feels.
        self.plotter.renderer.SetUseOIT(False)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)
        self.hand_actors: list = []
        self.truth_actors: list = []
        self.refined_actors: list = []
        self.silhouettes: list[Silhouette] = []
        self.label = self._label()

    def _label(self):
        """The frame's caption in the upper left corner, at a fixed size. Why not pyvista's corner text (a
        vtkCornerAnnotation): it searches for a font size fitting the view whenever its text changes, which
        reloads the font several times per frame (~10 ms per view in software GL)."""
        from vtkmodules.vtkRenderingCore import vtkTextActor

        label = vtkTextActor()
        style = label.GetTextProperty()
        style.SetFontSize(LABEL_SIZE)
        style.SetColor(0.0, 0.0, 0.0)
        style.SetVerticalJustificationToTop()
        label.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
        label.SetPosition(0.01, 0.99)
        self.plotter.add_actor(label, reset_camera=False, render=False)
        return label

    @property
    def label_text(self) -> str:
        return self.label.GetInput() or ""

    def set_label(self, text: str) -> None:
        if text != self.label_text:  # a new text is a new texture to draw
            self.label.SetInput(text)

    def show_meshes(self, meshes: HandPolyData, refined: bool = False) -> None:
        """Actors for ``meshes``' hands and ground truth, and with ``refined`` for its refined hands too (hidden
        until :meth:`set_visible` shows them)."""
        from vtkmodules.vtkRenderingCore import vtkMapper

        # Per-mapper depth offsets (GT_DEPTH_OFFSET) take effect only in this mode. It is VTK-global: every other
        # surface shifts alike (no visible change) and lines come slightly forward, which suits the outline.
        vtkMapper.SetResolveCoincidentTopologyToPolygonOffset()
        for actor in self.hand_actors + self.truth_actors + self.refined_actors:
            self.plotter.remove_actor(actor, reset_camera=False, render=False)
        for silhouette in self.silhouettes:
            silhouette.detach()
        self.silhouettes = []
        self.hand_actors = [self._hand(meshes.hands)]
        self.refined_actors = [self._hand(mesh) for mesh in meshes.refined] if refined else []
        for actor in self.refined_actors:
            actor.SetVisibility(False)
        surface = self.plotter.add_mesh(meshes.truth, color=GT_COLOUR, opacity=GT_OPACITY, specular=0.0,
                                        reset_camera=False, render=False)
        # Pushed back in depth: where the truth coincides with the prediction, the prediction wins outright
        # instead of z-fighting with the tint (which speckled it and dulled the penetration red).
        surface.mapper.SetRelativeCoincidentTopologyPolygonOffsetParameters(*GT_DEPTH_OFFSET)
        surface.prop.lighting = False
        self.truth_actors = [surface, self._outline(meshes.truth, meshes.pair_faces)]

    def _hand(self, mesh):
        actor = self.plotter.add_mesh(mesh, scalars="rgb", rgb=True, specular=0.2, show_scalar_bar=False,
                                      reset_camera=False, render=False)
        actor.prop.interpolation = "gouraud"  # smooth shading from the vertex normals
        return actor

    def _outline(self, mesh, faces: np.ndarray):
        """An actor drawing ``mesh``'s silhouette as seen from this view's camera (it follows the camera)."""
        import pyvista as pv
        from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

        silhouette = Silhouette(mesh, faces, self.plotter.renderer)
        self.silhouettes.append(silhouette)
        mapper = vtkPolyDataMapper()
        mapper.SetInputData(silhouette.lines)
        actor = vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(pv.Color(GT_OUTLINE).float_rgb)
        actor.GetProperty().SetLineWidth(GT_OUTLINE_WIDTH)
        actor.GetProperty().LightingOff()
        self.plotter.add_actor(actor, reset_camera=False, render=False)
        return actor

    def set_visible(self, hands: bool, truth: bool, refined: tuple[bool, bool] = (False, False)) -> None:
        """Show the hands, the ground truth, and each refined hand (right, left) where this view has them."""
        for actor in self.hand_actors:
            actor.SetVisibility(hands)
        for actor in self.truth_actors:
            actor.SetVisibility(truth)
        for actor, shown in zip(self.refined_actors, refined):
            actor.SetVisibility(bool(shown))

    def apply_preset(self, preset: str, points: np.ndarray | None) -> None:
        """``points`` [N, 3]: what the "camera" preset frames (the frame's hands), or None."""
        if preset == "camera":
            pose = fit_source_camera(points, self.plotter.bounds, self.plotter.window_size)
            cam = self.plotter.camera
            cam.parallel_projection = False
            cam.view_angle = pose.view_angle
            cam.position, cam.focal_point, cam.up = pose.position, pose.focal_point, pose.up
            self.plotter.reset_camera_clipping_range()
        else:
            set_view(self.plotter, preset)


class ScenePanel(QtWidgets.QWidget):
    """The main view and the second view side by side. With "link" on, the second view follows the main one,
    turned 90 degrees about the vertical (the other side of the hands, as the paper's alternative view).

    With "refined (right view)" on (enabled for a result with the refinement's arrays), the second view shows the
    refined hands of the frame instead of the network's, from the main view's very camera (turning either view
    turns both): link and the second preset do not apply meanwhile, and turning it off brings them back.
    """

    def __init__(self, session: Session, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.meshes: HandPolyData | None = None
        self._model_name: str | None = None
        self._fresh = False  # new meshes: fit the camera on the first frame that has hands
        self.main = HandView(self)
        self.second = HandView(self)
        self.preset = QtWidgets.QComboBox(self)
        self.preset.addItems(VIEW_PRESETS)
        self.second_preset = QtWidgets.QComboBox(self)
        self.second_preset.addItems(VIEW_PRESETS)
        self.second_preset.setCurrentText("alternative")
        self.link = QtWidgets.QCheckBox("link second view", self)
        self.link.setChecked(True)
        self.truth = QtWidgets.QCheckBox("ground truth", self)
        self.truth.setEnabled(False)  # off until a result with ground truth is shown (_on_results)
        self.truth.setToolTip(NO_TRUTH_TIP)
        self._truth_wanted = True  # the user's choice, kept while the box is off for a result without truth
        self.refined = QtWidgets.QCheckBox("refined (right view)", self)
        self.refined.setEnabled(False)
        self.refined.setToolTip(NO_REFINED_TIP)
        self._second_before: dict | None = None  # the second view's camera before it showed the refinement
        reset = QtWidgets.QPushButton("Reset", self)
        bar = QtWidgets.QHBoxLayout()
        for widget in (QtWidgets.QLabel("View", self), self.preset, reset, self.link,
                       QtWidgets.QLabel("Second", self), self.second_preset, self.truth, self.refined):
            bar.addWidget(widget)
        bar.addStretch(1)
        self.views = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal, self)
        self.views.addWidget(self.main)
        self.views.addWidget(self.second)
        self.views.setStretchFactor(0, 2)  # the main view twice as wide as the second
        self.views.setStretchFactor(1, 1)
        self._sizes_before: list[int] | None = None  # the views' widths before they showed network | refined
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(bar)
        layout.addWidget(self.views, 1)
        self.preset.activated.connect(lambda _: self.apply_preset(self.preset.currentText()))
        self.second_preset.activated.connect(lambda _: self._second_preset())
        reset.clicked.connect(lambda: self.apply_preset(self.preset.currentText()))
        self.link.toggled.connect(self._on_link)
        self.truth.toggled.connect(self._on_truth)
        self.refined.toggled.connect(self._on_refined)
        self.main.view.on_interaction(self._follow)
        self.second.view.on_interaction(self._lead)
        session.frame_changed.connect(self.show_frame)
        session.results_changed.connect(self._on_results)
        session.frames_updated.connect(self._on_frames_updated)
        self.second_preset.setEnabled(False)

    def _on_results(self) -> None:
        primary = self.session.primary
        if primary is not None:
            self.prepare(primary.result.meta.hand_model)
        has = primary is not None and bool(primary.result.refined)
        if not has:
            self.refined.setChecked(False)
        self.refined.setEnabled(has)
        self.refined.setToolTip(REFINED_TIP if has else NO_REFINED_TIP)
        truth = primary is not None and "vertices" in primary.result.gt
        self.truth.setEnabled(truth)  # first: a change of the tick while off is not the user's
        self.truth.setChecked(truth and self._truth_wanted)
        self.truth.setToolTip(TRUTH_TIP if truth else NO_TRUTH_TIP)

    def _on_truth(self, on: bool) -> None:
        if self.truth.isEnabled():
            self._truth_wanted = on
        self.show_frame(self.session.frame)

    @property
    def showing_refined(self) -> bool:
        """The second view shows the refined hands."""
        return self.refined.isChecked() and self.refined.isEnabled()

    def prepare(self, hand_model: str) -> None:
        """Build the meshes of ``hand_model`` (its name as results record it) unless they are built: costly
        enough (VTK actors in both views) that a run does it before its worker starts, not mid-run."""
        if hand_model.lower() == self._model_name:
            return
        from core_model.pipeline.models import faces_of, hand_model_of_result

        model = hand_model_of_result(hand_model)
        self.meshes = HandPolyData(faces_of(model), model.num_vertices)
        self._model_name = hand_model.lower()
        self.main.show_meshes(self.meshes)
        self.second.show_meshes(self.meshes, refined=True)
        self._compile_shaders(np.stack([model.right.data.v_template, model.left.data.v_template]))
        self._fresh = True

    def _compile_shaders(self, rest: np.ndarray) -> None:
        """Draw every actor of both views once, on the hand model's rest meshes ``rest`` [2, V, 3], and leave
        them as they were. Why: a view's first draw of a kind of actor compiles its shaders, which software GL
        does in 50-100 ms per actor; done here (when a result opens or before a run's worker starts), the first
        frames of a run do not freeze the window while it streams in."""
        none = np.zeros(rest.shape[:2], bool)
        self.meshes.update(rest, none, rest)
        self.meshes.update_refined(rest, none, np.ones(2, bool))
        for view in (self.main, self.second):
            actors = view.hand_actors + view.truth_actors + view.refined_actors
            shown = [actor.GetVisibility() for actor in actors]
            for actor in actors:
                actor.SetVisibility(True)
            view.view.render_image()
            for actor, visible in zip(actors, shown):
                actor.SetVisibility(visible)
            view.view.request_render()

    @functools.cached_property
    def software_gl(self) -> bool:
        """Whether the views render in software GL (asked of the context when first needed)."""
        name = self.main.view.renderer_name().lower()
        return any(kind in name for kind in SOFTWARE_GL)

    def set_playing(self, playing: bool) -> None:
        """Playback started or stopped: in software GL the views render at PLAYBACK_SCALE while it runs."""
        scale = PLAYBACK_SCALE if playing and self.software_gl else 1.0
        for view in (self.main, self.second):
            view.view.set_scale(scale)

    def _on_frames_updated(self, frames: np.ndarray) -> None:
        if self.session.frame in frames:
            self.show_frame(self.session.frame)

    def _framed(self) -> np.ndarray | None:
        """The frame's hand vertices [N, 3] the camera preset frames: the network's, and the refined ones while
        the second view shows them (the two views share the camera)."""
        loaded = self.session.primary
        if loaded is None or not loaded.shows(self.session.frame):
            return None
        parts = [loaded.result.vertices[self.session.frame].reshape(-1, 3)]
        if self.showing_refined and "vertices" in loaded.result.refined:
            parts.append(loaded.result.refined["vertices"][self.session.frame].reshape(-1, 3))
        points = np.concatenate(parts)
        points = points[np.isfinite(points).all(1)]
        return points if len(points) else None

    def show_frame(self, frame: int) -> None:
        loaded = self.session.primary
        if self.meshes is None or loaded is None:
            for view in (self.main, self.second):
                view.set_label("no result open")
            self.render()
            return
        result = loaded.result
        drawable = bool(loaded.shows(frame) and result.valid[frame].all() and np.isfinite(result.vertices[frame]).all())
        truth = result.gt.get("vertices")
        has_truth = bool(truth is not None and truth.shape[2] == result.num_vertices and self.truth.isChecked()
                         and np.isfinite(truth[frame]).all())
        if drawable:
            self.meshes.update(result.vertices[frame], result.inside[frame], truth[frame] if has_truth else None)
            text = f"frame {frame}"
            if result.inside[frame].any():
                text += f": {int(result.inside[frame].sum())} penetrating vertices"
        else:
            text = f"frame {frame}: " + ("not reconstructed yet" if not loaded.shows(frame) else "no two hands")
        if self.showing_refined:
            self._show_refined(loaded, frame, drawable, drawable and has_truth, text)
        else:
            for view in (self.main, self.second):
                view.set_visible(drawable, drawable and has_truth)
                view.set_label(text)
        if drawable and self._fresh:
            self._fresh = False
            self.apply_preset(self.preset.currentText())
            return
        self.render()

    def _show_refined(self, loaded: LoadedResult, frame: int, drawable: bool, truth: bool, text: str) -> None:
        """The network's hands in the main view, the refined ones in the second, each view saying which it
        shows and how many vertices penetrate."""
        result = loaded.result
        if drawable:
            text = f"frame {frame}: {int(result.inside[frame].sum())} penetrating vertices"
        self.main.set_visible(drawable, truth)
        self.main.set_label(f"network\n{text}")
        vertices = result.refined["vertices"][frame]
        inside = np.asarray(result.refined["inside"][frame], bool)
        hands = np.isfinite(vertices).all(axis=(-1, -2)) & loaded.shows(frame)  # [2]: refined hands to draw
        self.meshes.update_refined(vertices, inside, hands)
        if not loaded.shows(frame):
            refined = f"frame {frame}: not reconstructed yet"
        elif not hands.any():
            refined = f"frame {frame}: not refined"
        else:
            refined = f"frame {frame}: {int(inside[hands].sum())} penetrating vertices"
            if not hands.all():
                refined += f" ({'right' if hands[0] else 'left'} hand only)"
        self.second.set_visible(False, truth, (bool(hands[0]), bool(hands[1])))
        self.second.set_label(f"refined\n{refined}")

    def render(self) -> None:
        """Schedule both views to render once, at their next paint."""
        self.main.view.request_render()
        self.second.view.request_render()

    def apply_preset(self, preset: str) -> None:
        self.preset.setCurrentText(preset)
        self.main.apply_preset(preset, self._framed())
        if self.link.isChecked() or self.showing_refined:
            self._follow()
        else:
            self._second_preset()
        self.render()

    def _second_preset(self) -> None:
        self.second.apply_preset(self.second_preset.currentText(), self._framed())
        self.second.view.request_render()

    def _on_link(self, linked: bool) -> None:
        self.second_preset.setEnabled(not linked and not self.showing_refined)
        if not self.showing_refined:  # meanwhile the second view keeps the main view's camera
            self._follow() if linked else self._second_preset()

    def _on_refined(self, on: bool) -> None:
        self.link.setEnabled(not on)
        self.second_preset.setEnabled(not on and not self.link.isChecked())
        if on:  # two views of equal width: the same camera then frames the same part of the scene in both
            self._second_before = camera_state(self.second.plotter)
            self._sizes_before = self.views.sizes()
            total = sum(self._sizes_before)
            if total > 1:
                self.views.setSizes([total - total // 2, total // 2])
            if self.preset.currentText() == "camera":  # the real camera, widened to both results of the frame
                self.apply_preset("camera")
            else:
                self._follow()
        elif self.link.isChecked() or self._second_before is None:
            self._on_link(self.link.isChecked())
        else:  # unlinked: the second view's own camera, as it was before
            set_camera_state(self.second.plotter, self._second_before)
        if not on:
            if self._sizes_before is not None:
                self.views.setSizes(self._sizes_before)
            self._second_before, self._sizes_before = None, None
        self.show_frame(self.session.frame)

    def _follow(self) -> None:
        """The second view after the main one: the very same camera while it shows the refinement, else (linked)
        turned 90 degrees about the vertical."""
        refined = self.showing_refined
        if not (refined or self.link.isChecked()):
            return
        cam = self.second.plotter.renderer.GetActiveCamera()
        cam.DeepCopy(self.main.plotter.renderer.GetActiveCamera())
        if not refined:
            cam.Azimuth(90.0)
            cam.OrthogonalizeViewUp()
            # the main view's framing, turned, can leave the hands (and does in the narrower second view): widened
            # until the frame's hands fit
            widen_to_fit(cam, self._framed(), self.second.plotter.window_size)
        self.second.plotter.reset_camera_clipping_range()
        self.second.view.request_render()

    def _lead(self) -> None:
        """While the second view shows the refinement, turning it turns the main view alike."""
        if not self.showing_refined:
            return
        self.main.plotter.renderer.GetActiveCamera().DeepCopy(self.second.plotter.renderer.GetActiveCamera())
        self.main.plotter.reset_camera_clipping_range()
        self.main.view.request_render()

    def cameras(self) -> dict:
        return {"main": camera_state(self.main.plotter), "second": camera_state(self.second.plotter),
                "preset": self.preset.currentText(), "second_preset": self.second_preset.currentText(),
                "linked": self.link.isChecked(), "refined": self.showing_refined}

    def set_cameras(self, state: dict) -> None:
        self._fresh = False
        self.preset.setCurrentText(state.get("preset", "camera"))
        self.second_preset.setCurrentText(state.get("second_preset", "alternative"))
        self.link.setChecked(bool(state.get("linked", True)))
        self.refined.setChecked(bool(state.get("refined", False)) and self.refined.isEnabled())
        set_camera_state(self.main.plotter, state["main"])
        set_camera_state(self.second.plotter, state["second"])
        self.render()

    def image(self) -> np.ndarray:
        """Both views rendered side by side, RGB uint8 (what the screenshot export and the tests see)."""
        left = self.main.view.render_image()
        right = self.second.view.render_image()
        height = max(left.shape[0], right.shape[0])
        pad = [np.pad(im[..., :3], ((0, height - im.shape[0]), (0, 0), (0, 0)), constant_values=255)
               for im in (left, right)]
        return np.concatenate(pad, axis=1)

    def snapshot(self) -> QtGui.QImage:
        from viewer.panels.video import to_qimage

        return to_qimage(self.image())

    def close_views(self) -> None:
        self.main.view.release()
        self.second.view.release()
