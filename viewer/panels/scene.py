"""The 3D view: both hands of the current frame in their colours, penetrating vertices red, smooth shading,
ground truth as a light grey "ghost" (a faint translucent surface with its outline); camera presets, reset, and a
linked second view (the paper's "alternative view").

Comparison: the checkable "Results" list picks which results the panel shows, a loaded result's refinement counting
as a result of its own ("<label> (refined)"). With two to four checked, each has a view of its own, side by side
(four in two rows), each captioned with its name and its penetrating vertices in red; their cameras are linked:
turning, zooming or panning one does the same in all, each centred on its own result's hands (a refinement can lie
far from the network's hands; results of several methods need not share an origin). "refined (right view)" is a
shortcut that checks the shown result and its refinement.

"follow hands": the camera follows both hands through the clip, a smoothed fit over time (core_model.framing) that
keeps the direction, zoom and pan the user gave it; on by default for a result without ground truth (a real clip,
whose hands move about), off for one with it (a still camera reads the error against the ghost better).

The meshes the views draw, and the ground truth's outline, are viewer.panels.hand_polydata's.
"""

from __future__ import annotations

import functools

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from core_model.framing import follow_pose, view_distance
from core_model.render import CameraPose, fit_source_camera, set_view
from viewer.panels.hand_polydata import HandPolyData, Silhouette
from viewer.panels.shown import MAX_SHOWN, Shown, ShownList, Tracks, available
from viewer.session import Session

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
REFINED_TIP = ("Shows the result and its test-time refinement side by side (penetrating vertices red): a shortcut "
               "for checking both in the Results list")
NO_REFINED_TIP = "The shown result holds no refinement (made by interhand run --refine)"
TRUTH_TIP = "Ground-truth meshes as a faint grey ghost with its outline"
NO_TRUTH_TIP = "The shown result has no ground truth (only results of sequences with annotations do)"
FOLLOW_TIP = ("The camera follows both hands over the clip: a smoothed fit, never a per-frame jump, that keeps the "
              "direction, zoom and pan you give it. On by default for results without ground truth")
SOURCE_VIEW = ((0.0, 0.0, 1.0), (0.0, -1.0, 0.0), 30.0)  # the "camera" preset while following: direction, up, angle


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
    """One RenderView drawing the meshes of one HandPolyData (:meth:`bind`): its hand pair, its ground truth and
    its two refined hands, each shown or hidden by :meth:`set_visible`."""

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
        # The panel places this camera, often through VTK's own calls (linked views copy one camera into another):
        # pyvista would move a camera it has not seen set to its default view when plotter.camera is first read.
        self.plotter.camera_set = True
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)
        self.meshes: HandPolyData | None = None
        self.hand_actors: list = []
        self.truth_actors: list = []
        self.refined_actors: list = []
        self.silhouettes: list[Silhouette] = []
        self.compiled = False  # every kind of actor drawn once (ScenePanel._compile_shaders)
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

    def bind(self, meshes: HandPolyData) -> None:
        """Draw ``meshes``: actors for its hand pair, its ground truth and its refined hands, all hidden until
        :meth:`set_visible` shows them. Nothing to do when this view draws them already. Cheap after the first
        time: the new actors are of the kinds this view drew before, whose shaders its context keeps."""
        if meshes is self.meshes:
            return
        from vtkmodules.vtkRenderingCore import vtkMapper

        # Per-mapper depth offsets (GT_DEPTH_OFFSET) take effect only in this mode. It is VTK-global: every other
        # surface shifts alike (no visible change) and lines come slightly forward, which suits the outline.
        vtkMapper.SetResolveCoincidentTopologyToPolygonOffset()
        for actor in self.hand_actors + self.truth_actors + self.refined_actors:
            self.plotter.remove_actor(actor, reset_camera=False, render=False)
        for silhouette in self.silhouettes:
            silhouette.detach()
        self.silhouettes = []
        self.meshes = meshes
        self.hand_actors = [self._hand(meshes.hands)]
        self.refined_actors = [self._hand(mesh) for mesh in meshes.refined]
        surface = self.plotter.add_mesh(meshes.truth, color=GT_COLOUR, opacity=GT_OPACITY, specular=0.0,
                                        reset_camera=False, render=False)
        # Pushed back in depth: where the truth coincides with the prediction, the prediction wins outright
        # instead of z-fighting with the tint (which speckled it and dulled the penetration red).
        surface.mapper.SetRelativeCoincidentTopologyPolygonOffsetParameters(*GT_DEPTH_OFFSET)
        surface.prop.lighting = False
        self.truth_actors = [surface, self._outline(meshes.truth, meshes.pair_faces)]
        self.set_visible(False, False)

    @property
    def actors(self) -> list:
        return self.hand_actors + self.truth_actors + self.refined_actors

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
        silhouette.actor = actor
        self.plotter.add_actor(actor, reset_camera=False, render=False)
        return actor

    def set_visible(self, hands: bool, truth: bool, refined: tuple[bool, bool] = (False, False)) -> None:
        """Show the hand pair, the ground truth, and each refined hand (right, left)."""
        for actor in self.hand_actors:
            actor.SetVisibility(hands)
        for actor in self.truth_actors:
            actor.SetVisibility(truth)
        for actor, shown in zip(self.refined_actors, refined):
            actor.SetVisibility(bool(shown))

    @property
    def aspect(self) -> float:
        """The view's width over its height."""
        width, height = self.plotter.window_size
        return width / max(height, 1)

    def apply_preset(self, preset: str, points: np.ndarray | None, fit_points: bool = False) -> None:
        """``points`` [N, 3]: what the "camera" preset frames (the frame's hands), or None. With ``fit_points`` the
        other presets frame them too, beside this view's own actors."""
        if preset == "camera":
            self.set_pose(fit_source_camera(points, self.plotter.bounds, self.plotter.window_size))
            return
        set_view(self.plotter, preset)
        if fit_points and points is not None:
            ours = np.reshape(self.plotter.bounds, (3, 2))
            bounds = np.stack([np.minimum(ours[:, 0], points.min(0)), np.maximum(ours[:, 1], points.max(0))], 1)
            self.plotter.renderer.ResetCamera(*bounds.ravel())
            self.plotter.camera.zoom(1.15)
            self.plotter.reset_camera_clipping_range()

    def set_pose(self, pose: CameraPose) -> None:
        """Place the camera (VTK's calls: pyvista's setters fit the clipping range after each, and a following
        camera is placed on every frame)."""
        cam = self.plotter.renderer.GetActiveCamera()
        cam.SetParallelProjection(False)
        cam.SetViewAngle(pose.view_angle)
        cam.SetPosition(*pose.position)
        cam.SetFocalPoint(*pose.focal_point)
        cam.SetViewUp(*pose.up)
        self.plotter.renderer.ResetCameraClippingRange()

    def look_like(self, other: HandView, shift: np.ndarray) -> None:
        """This view's camera: ``other``'s moved by ``shift`` [3] metres."""
        cam = self.plotter.renderer.GetActiveCamera()
        cam.DeepCopy(other.plotter.renderer.GetActiveCamera())
        cam.Modified()  # DeepCopy leaves the time stamp: the renderer would keep its matrices of the last pose
        cam.SetPosition(*(np.asarray(cam.GetPosition()) + shift))
        cam.SetFocalPoint(*(np.asarray(cam.GetFocalPoint()) + shift))
        self.plotter.renderer.ResetCameraClippingRange()
        self.view.request_render()

    def framing(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
        """The camera's position, focal point, up (each [3]), view angle (degrees) and distance."""
        cam = self.plotter.renderer.GetActiveCamera()
        position, focal = np.array(cam.GetPosition()), np.array(cam.GetFocalPoint())
        return (position, focal, np.array(cam.GetViewUp()), float(cam.GetViewAngle()),
                float(np.linalg.norm(focal - position)))


class ScenePanel(QtWidgets.QWidget):
    """The 3D views and their controls.

    One result shown: the main view and the second view side by side. With "link" on, the second view follows the
    main one, turned 90 degrees about the vertical (the other side of the hands, as the paper's alternative view).

    Several (checked in ``results_list``): one view each, in the list's order, of equal size (a row, or two rows
    for four); link and the second preset do not apply meanwhile, and showing one result again brings them back.
    Each view's camera is the first view's moved by the offset between their results' hands (``_centres``): fixed
    when a preset is applied, following the smoothed tracks while "follow hands" is on.
    """

    def __init__(self, session: Session, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.slots: list[HandPolyData | None] = [None] * MAX_SHOWN  # the meshes of each shown result, by position
        self._slot_models: list[str | None] = [None] * MAX_SHOWN
        self._models: dict[str, tuple] = {}  # hand model name: (faces, vertex count, rest meshes [2, V, 3])
        self.tracks = Tracks()
        self._fresh = False  # another result: fit the camera on the first frame that has hands
        self._primary_key: tuple | None = None
        self._compare = False  # the views show several results
        self._playing = False
        self._anchors: list[np.ndarray] = []  # comparing, not following: the hands' centre each camera is on
        self._framing: dict[int, tuple[np.ndarray, float]] = {}  # following: a camera's pan [3] and zoom
        self.main = HandView(self)
        self.second = HandView(self)
        self.extra: list[HandView] = []  # the third and fourth views, made when first needed
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
        self.follow = QtWidgets.QCheckBox("follow hands", self)
        self.follow.setToolTip(FOLLOW_TIP)
        self.results_list = ShownList(self)
        self._second_before: dict | None = None  # the second view's camera before the views compared results
        reset = QtWidgets.QPushButton("Reset", self)
        # Two rows of controls, what is shown above how it is seen: in one row they would make the dock wider than
        # the window gives it.
        bars = []
        for widgets in ((self.results_list, self.refined, self.truth, self.follow),
                        (QtWidgets.QLabel("View", self), self.preset, reset, self.link,
                         QtWidgets.QLabel("Second", self), self.second_preset)):
            bar = QtWidgets.QHBoxLayout()
            for widget in widgets:
                bar.addWidget(widget)
            bar.addStretch(1)
            bars.append(bar)
        self.views = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal, self)  # the first row of views
        self.views.addWidget(self.main)
        self.views.addWidget(self.second)
        self.views.setStretchFactor(0, 2)  # the main view twice as wide as the second
        self.views.setStretchFactor(1, 1)
        self.lower = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal, self)  # the second row (four results)
        self.rows = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical, self)
        self.rows.addWidget(self.views)
        self.rows.addWidget(self.lower)
        self.lower.hide()
        self._sizes_before: list[int] | None = None  # the views' widths before they compared results
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        for bar in bars:
            layout.addLayout(bar)
        layout.addWidget(self.rows, 1)
        self.preset.activated.connect(lambda _: self.apply_preset(self.preset.currentText()))
        self.second_preset.activated.connect(lambda _: self._second_preset())
        reset.clicked.connect(lambda: self.apply_preset(self.preset.currentText()))
        self.link.toggled.connect(self._on_link)
        self.truth.toggled.connect(self._on_truth)
        self.refined.toggled.connect(self._on_refined)
        self.follow.toggled.connect(self._on_follow)
        self.results_list.changed.connect(self._on_shown)
        for index, view in enumerate((self.main, self.second)):
            view.view.on_interaction(lambda i=index: self._interacted(i))
        session.frame_changed.connect(self.show_frame)
        session.results_changed.connect(self._on_results)
        session.frames_updated.connect(self._on_frames_updated)
        self.second_preset.setEnabled(False)

    # ------------------------------------------------------------------------------------------------ what is shown

    @property
    def hand_views(self) -> list[HandView]:
        """Every view made so far, the main and second first."""
        return [self.main, self.second, *self.extra]

    @property
    def shown(self) -> list[Shown]:
        """The results the views show (checked in the list), in the list's order."""
        return self.results_list.checked()

    @property
    def comparing(self) -> bool:
        """The views show several results, one each."""
        return self._compare

    def shown_views(self) -> list[HandView]:
        """The views on screen: one per shown result while comparing, else the main and second views."""
        return self.hand_views[:len(self.shown)] if self._compare else [self.main, self.second]

    @property
    def meshes(self) -> HandPolyData | None:
        """The meshes of the first shown result."""
        return self.slots[0]

    def _on_results(self) -> None:
        """Results were opened, closed or replaced: list them, keep checked what stays open (a running model's
        result stays checked when the finished one replaces it), and show the new first result where the list
        showed the first one alone."""
        primary = self.session.primary
        entries = available(self.session.results)
        self.tracks.keep(entries)
        before = [shown.key for shown in self.results_list.checked()]
        if primary is None:
            checked = []
        elif before in ([], [self._primary_key]):
            checked = [Shown(primary)]
        else:
            checked = [shown for shown in entries if shown.key in before] or [Shown(primary)]
        self.results_list.set_entries(entries, checked)
        key = Shown(primary).key if primary is not None else None
        if key is not None and key != self._primary_key:  # another result, not the same run's finished one
            with QtCore.QSignalBlocker(self.follow):
                self.follow.setChecked(not primary.result.gt)
            self._framing.clear()
            self._fresh = True
        self._primary_key = key
        has = primary is not None and bool(primary.result.refined)
        self.refined.setEnabled(has)
        self.refined.setToolTip(REFINED_TIP if has else NO_REFINED_TIP)
        truth = primary is not None and "vertices" in primary.result.gt
        self.truth.setEnabled(truth)  # first: a change of the tick while off is not the user's
        self.truth.setChecked(truth and self._truth_wanted)
        self.truth.setToolTip(TRUTH_TIP if truth else NO_TRUTH_TIP)
        self._on_shown()

    def _on_truth(self, on: bool) -> None:
        if self.truth.isEnabled():
            self._truth_wanted = on
        self.show_frame(self.session.frame)

    @property
    def showing_refined(self) -> bool:
        """The views show the first result and its refinement, side by side."""
        primary = self.session.primary
        return primary is not None and self.shown == [Shown(primary), Shown(primary, refined=True)]

    def _on_refined(self, on: bool) -> None:
        primary = self.session.primary
        if primary is None or not primary.result.refined:
            return
        self.results_list.set_checked([Shown(primary), Shown(primary, refined=True)] if on else [Shown(primary)])

    def _on_shown(self) -> None:
        """The shown results changed: give each its view and meshes, lay the views out, and place the cameras."""
        shown = self.shown
        compare = len(shown) > 1
        entering, leaving = compare and not self._compare, self._compare and not compare
        if entering:  # what to give back when one result is shown again
            self._second_before = camera_state(self.second.plotter)
            self._sizes_before = self.views.sizes()
        self._compare = compare
        self._bind()
        self._arrange(len(shown) if compare else 1)
        self.link.setEnabled(not compare)
        self.second_preset.setEnabled(not compare and not self.link.isChecked())
        with QtCore.QSignalBlocker(self.refined):
            self.refined.setChecked(self.showing_refined)
        if leaving:
            if self._sizes_before is not None and sum(self._sizes_before) > 1:
                sizes = self._sizes_before[:self.views.count()]
                self.views.setSizes(sizes + [0] * (self.views.count() - len(sizes)))
            if self.link.isChecked() or self._second_before is None:
                self._on_link(self.link.isChecked())
            else:  # unlinked: the second view's own camera, as it was before
                set_camera_state(self.second.plotter, self._second_before)
            self._second_before, self._sizes_before = None, None
        self.show_frame(self.session.frame)
        if compare and not self.follow.isChecked() and not self._fresh:
            if self.preset.currentText() == "camera":  # the real camera, widened to every shown result
                self.apply_preset("camera")
            else:  # the main view's turn, kept
                self._anchors = self._centres(self.session.frame) or []
                self._link_from(0)

    def _arrange(self, count: int) -> None:
        """One row of views for up to three results, two rows of two for four; the main and second view alone
        (the main one twice as wide) for one."""
        views = [self._view(i) for i in range(max(count, 2))]
        first, second = (views[:3], []) if count == 3 else (views[:2], views[2:4])
        for i, view in enumerate(first):
            self.views.insertWidget(i, view)
        for i, view in enumerate(second):
            self.lower.insertWidget(i, view)
        for view in self.hand_views:
            view.setVisible(view in first or view in second)
        self.lower.setVisible(bool(second))
        for i in range(self.views.count()):  # one result: the main view twice as wide as the second
            self.views.setStretchFactor(i, 2 if count == 1 and i == 0 else 1)
        if count > 1:
            for splitter, views in ((self.views, first), (self.lower, second), (self.rows, [first, second])):
                if views and views[-1]:
                    # In pixels: QSplitter takes what does not fit from the widgets that stretch, not evenly.
                    total = sum(splitter.sizes()) or 1000 * len(views)
                    splitter.setSizes([total // len(views)] * len(views))

    def _view(self, index: int) -> HandView:
        """The view at ``index``, made if it is the next one."""
        if index == len(self.hand_views):
            view = HandView(self)
            view.view.on_interaction(lambda: self._interacted(index))
            if self._playing:
                view.view.set_scale(self._playback_scale())
            self.extra.append(view)
        return self.hand_views[index]

    # ------------------------------------------------------------------------------------------------ meshes

    def prepare(self, hand_model: str) -> None:
        """Build the meshes of ``hand_model`` (its name as results record it) for the first result unless they are
        built: costly enough (VTK actors in both views) that a run does it before its worker starts, not
        mid-run."""
        meshes = self._slot(0, hand_model)
        if not self._compare:
            self.main.bind(meshes)
            self.second.bind(meshes)
            self._compile_shaders([self.main, self.second], hand_model)

    def _model(self, hand_model: str) -> tuple:
        name = hand_model.lower()
        if name not in self._models:
            from core_model.pipeline.models import faces_of, hand_model_of_result

            model = hand_model_of_result(hand_model)
            rest = np.stack([model.right.data.v_template, model.left.data.v_template])
            self._models[name] = (faces_of(model), model.num_vertices, rest)
        return self._models[name]

    def _slot(self, slot: int, hand_model: str) -> HandPolyData:
        """The meshes the ``slot``-th shown result is drawn with, of ``hand_model``."""
        if self.slots[slot] is None or self._slot_models[slot] != hand_model.lower():
            faces, count, _ = self._model(hand_model)
            self.slots[slot] = HandPolyData(faces, count)
            self._slot_models[slot] = hand_model.lower()
        return self.slots[slot]

    def _bind(self) -> None:
        """Each shown result's meshes into its view (the main and second views share the first's)."""
        shown = self.shown
        if not shown:
            return
        if self._compare:
            for slot, entry in enumerate(shown):
                view = self._view(slot)
                view.bind(self._slot(slot, entry.hand_model))
                self._compile_shaders([view], entry.hand_model)
        else:
            self.prepare(shown[0].hand_model)

    def _compile_shaders(self, views: list[HandView], hand_model: str) -> None:
        """Draw every actor of ``views`` once, on the hand model's rest meshes, and leave them as they were (the
        next frame overwrites the meshes). Why: a view's first draw of a kind of actor compiles its shaders,
        which software GL does in 50-100 ms per actor; done here (when a result opens, before a run's worker
        starts, or when a view first compares), the first frames of a run do not freeze the window while it
        streams in. Once per view: its context keeps the shaders for every later actor of the same kinds."""
        rest = self._model(hand_model)[2]
        none = np.zeros(rest.shape[:2], bool)
        for view in views:
            if view.compiled:
                continue
            view.meshes.update(rest, none, rest)
            view.meshes.update_refined(rest, none, np.ones(2, bool))
            shown = [actor.GetVisibility() for actor in view.actors]
            for actor in view.actors:
                actor.SetVisibility(True)
            view.view.render_image()
            for actor, visible in zip(view.actors, shown):
                actor.SetVisibility(visible)
            view.view.request_render()
            view.compiled = True

    @functools.cached_property
    def software_gl(self) -> bool:
        """Whether the views render in software GL (asked of the context when first needed)."""
        name = self.main.view.renderer_name().lower()
        return any(kind in name for kind in SOFTWARE_GL)

    def _playback_scale(self) -> float:
        return PLAYBACK_SCALE if self._playing and self.software_gl else 1.0

    def set_playing(self, playing: bool) -> None:
        """Playback started or stopped: in software GL the views render at PLAYBACK_SCALE while it runs."""
        self._playing = playing
        for view in self.hand_views:
            view.view.set_scale(self._playback_scale())

    def _on_frames_updated(self, frames: np.ndarray) -> None:
        if self.session.primary is not None:
            self.tracks.frames_ready(self.session.primary, frames)
        if self.session.frame in frames:
            self.show_frame(self.session.frame)

    def show_frame(self, frame: int) -> None:
        shown = self.shown
        if self.slots[0] is None or not shown:
            for view in (self.main, self.second):
                view.set_visible(False, False)
                view.set_label("no result open")
            self.render()
            return
        named = len(self.results_list.entries) > 1
        any_hands = False
        for slot, entry in enumerate(shown if self._compare else shown[:1]):
            hands = entry.at(frame)
            truth = entry.truth(frame) if self.truth.isChecked() and hands.hands.any() else None
            meshes = self.slots[slot]
            if entry.refined:
                meshes.update_refined(hands.vertices, hands.inside, hands.hands)
                if truth is not None:
                    meshes.update_truth(truth)
                visible = (False, truth is not None, (bool(hands.hands[0]), bool(hands.hands[1])))
            else:
                if hands.hands.all():
                    meshes.update(hands.vertices, hands.inside, truth)
                visible = (bool(hands.hands.all()), truth is not None)
            label = f"{entry.name}\n{hands.text}" if named else hands.text
            for view in [self.hand_views[slot]] if self._compare else [self.main, self.second]:
                view.set_visible(*visible)
                view.set_label(label)
            any_hands = any_hands or bool(hands.hands.any())
        if any_hands and self._fresh:
            self._fresh = False
            self.apply_preset(self.preset.currentText())
            return
        if self.follow.isChecked():
            self._follow_hands(frame)
        self.render()

    def render(self) -> None:
        """Schedule the views on screen to render once, at their next paint."""
        for view in self.shown_views():
            view.view.request_render()

    # ------------------------------------------------------------------------------------------------ cameras

    def _centres(self, frame: int) -> list[np.ndarray] | None:
        """Where each shown result's hands are on ``frame`` (the centre of their smoothed track; a result
        without hands anywhere takes the first one's), or None when none has any."""
        shown = self.shown if self._compare else self.shown[:1]
        centres = [self.tracks.track(entry).centre[frame] if frame < len(self.tracks.track(entry)) else
                   np.full(3, np.nan) for entry in shown]
        known = [c for c in centres if np.isfinite(c).all()]
        if not known:
            return None
        return [c if np.isfinite(c).all() else known[0] for c in centres]

    def _radius(self, frame: int) -> float:
        """The radius of the largest shown result's smoothed track on ``frame``: every view is at the distance
        that holds it, so the results are seen at the same scale."""
        shown = self.shown if self._compare else self.shown[:1]
        radii = [self.tracks.track(entry).radius[frame] for entry in shown
                 if frame < len(self.tracks.track(entry))]
        radii = [r for r in radii if np.isfinite(r)]
        return max(radii) if radii else float("nan")

    def _framed(self) -> np.ndarray | None:
        """The frame's hand vertices [N, 3] the camera preset frames: the first result's and, while comparing,
        each other's moved by the offset between its hands and the first's (its view is moved by as much)."""
        frame = self.session.frame
        shown = self.shown if self._compare else self.shown[:1]
        centres = self._centres(frame) if self._compare else None
        parts = []
        for k, entry in enumerate(shown):
            hands = entry.at(frame)
            points = hands.vertices[hands.hands].reshape(-1, 3)
            parts.append(points - centres[k] + centres[0] if centres is not None else points)
        points = np.concatenate(parts) if parts else np.zeros((0, 3))
        points = points[np.isfinite(points).all(1)]
        return points if len(points) else None

    def apply_preset(self, preset: str) -> None:
        self.preset.setCurrentText(preset)
        if self.follow.isChecked() and self._centres(self.session.frame) is not None:
            self._orient(self.main, preset)
            self._framing.pop(0, None)
            self._follow_hands(self.session.frame)
        else:
            if self._compare:
                self._anchors = self._centres(self.session.frame) or []
            self.main.apply_preset(preset, self._framed(), fit_points=self._compare)
            if self._compare:
                self._link_from(0)
            elif self.link.isChecked():
                self._follow()
            else:
                self._second_preset()
        self.render()

    @staticmethod
    def _orient(view: HandView, preset: str) -> None:
        """Turn ``view``'s camera to look as ``preset`` does (where from is left to the following)."""
        if preset == "camera":
            direction, up, angle = SOURCE_VIEW
            view.set_pose(CameraPose((0.0, 0.0, 0.0), direction, up, angle))
        else:
            set_view(view.plotter, preset)

    def _second_preset(self) -> None:
        preset = self.second_preset.currentText()
        if self.follow.isChecked() and self._centres(self.session.frame) is not None:
            self._orient(self.second, preset)
            self._framing.pop(1, None)
            self._follow_hands(self.session.frame)
        else:
            self.second.apply_preset(preset, self._framed())
        self.second.view.request_render()

    def _on_link(self, linked: bool) -> None:
        self.second_preset.setEnabled(not linked and not self._compare)
        if not self._compare:
            self._follow() if linked else self._second_preset()

    def _on_follow(self, on: bool) -> None:
        self._framing.clear()
        if on:
            self._follow_hands(self.session.frame)
        elif self._compare:  # the cameras stay where following left them
            self._anchors = self._centres(self.session.frame) or []
        self.render()

    def _follow_hands(self, frame: int) -> None:
        """Place the cameras on the shown results' smoothed tracks at ``frame``, each keeping its direction and
        the zoom and pan the user gave it; while comparing, at one distance (the largest result's)."""
        centres = self._centres(frame) if self.shown else None
        if centres is None:
            return
        radius = self._radius(frame)
        if self._compare:
            aspect = min(view.aspect for view in self.shown_views())
            self._place(self.main, 0, centres[0], radius, aspect)
            self._link_from(0, centres)
            return
        self._place(self.main, 0, centres[0], radius, self.main.aspect)
        if self.link.isChecked():
            self._follow()
        else:
            self._place(self.second, 1, centres[0], radius, self.second.aspect)

    def _place(self, view: HandView, key: int, centre: np.ndarray, radius: float, aspect: float) -> None:
        position, focal, up, _, _ = view.framing()
        pan, zoom = self._framing.get(key, (None, 1.0))
        view.set_pose(follow_pose(centre, radius, focal - position, up, SOURCE_VIEW[2], aspect, zoom, pan))
        view.view.request_render()

    def _remember(self, index: int, key: int) -> None:
        """The user moved view ``index``'s camera while following: keep its zoom and pan (as ``key``'s)."""
        frame = self.session.frame
        centres = self._centres(frame)
        if centres is None:
            return
        view = self.hand_views[index]
        _, focal, _, angle, distance = view.framing()
        aspect = min(v.aspect for v in self.shown_views()) if self._compare else view.aspect
        fitted = float(view_distance(self._radius(frame), angle, aspect))
        self._framing[key] = (focal - centres[index if self._compare else 0], distance / fitted)

    def _link_from(self, index: int, centres: list[np.ndarray] | None = None) -> None:
        """While comparing: every other shown view's camera is view ``index``'s moved by the offset between their
        results' hands (``centres``; by default the tracks' on this frame while following, else the anchors)."""
        views = self.shown_views()
        if not self._compare or index >= len(views):
            return
        if centres is None:
            following = self.follow.isChecked()
            centres = self._centres(self.session.frame) if following else self._anchors
            if not following and len(centres or []) != len(views):  # a result joined: anchor on this frame
                centres = self._anchors = self._centres(self.session.frame) or []
        if not centres or len(centres) != len(views):
            centres = [np.zeros(3)] * len(views)
        for k, view in enumerate(views):
            if k != index:
                view.look_like(views[index], centres[k] - centres[index])

    def _interacted(self, index: int) -> None:
        """The user turned, zoomed or panned view ``index``."""
        following = self.follow.isChecked()
        if self._compare:
            if index < len(self.shown):
                if following:
                    self._remember(index, 0)
                self._link_from(index)
        elif index == 0:
            if following:
                self._remember(0, 0)
            self._follow()
        elif following and not self.link.isChecked():
            self._remember(1, 1)

    def _follow(self) -> None:
        """The other views after the main one: while comparing, linked (:meth:`_link_from`); else the second view,
        when linked, turned 90 degrees about the vertical."""
        if self._compare:
            self._link_from(0)
            return
        if not self.link.isChecked():
            return
        cam = self.second.plotter.renderer.GetActiveCamera()
        cam.DeepCopy(self.main.plotter.renderer.GetActiveCamera())
        cam.Azimuth(90.0)
        cam.OrthogonalizeViewUp()
        # the main view's framing, turned, can leave the hands (and does in the narrower second view): widened
        # until the frame's hands fit
        widen_to_fit(cam, self._framed(), self.second.plotter.window_size)
        self.second.plotter.reset_camera_clipping_range()
        self.second.view.request_render()

    def cameras(self) -> dict:
        results = self.session.results
        shown = [[next(i for i, r in enumerate(results) if r is s.loaded), s.refined] for s in self.shown]
        return {"main": camera_state(self.main.plotter), "second": camera_state(self.second.plotter),
                "views": [camera_state(view.plotter) for view in self.shown_views()],
                "preset": self.preset.currentText(), "second_preset": self.second_preset.currentText(),
                "linked": self.link.isChecked(), "refined": self.showing_refined, "follow": self.follow.isChecked(),
                "shown": shown}

    def set_cameras(self, state: dict) -> None:
        self._fresh = False
        self.preset.setCurrentText(state.get("preset", "camera"))
        self.second_preset.setCurrentText(state.get("second_preset", "alternative"))
        self.link.setChecked(bool(state.get("linked", True)))
        with QtCore.QSignalBlocker(self.follow):
            self.follow.setChecked(bool(state.get("follow", self.follow.isChecked())))
        results = self.session.results
        shown = [Shown(results[i], bool(refined)) for i, refined in state.get("shown", [])
                 if 0 <= i < len(results) and (not refined or results[i].result.refined)]
        if shown:
            self.results_list.set_checked(shown)
        else:
            self.refined.setChecked(bool(state.get("refined", False)) and self.refined.isEnabled())
        set_camera_state(self.main.plotter, state["main"])
        set_camera_state(self.second.plotter, state["second"])
        for view, saved in zip(self.shown_views(), state.get("views", [])):
            set_camera_state(view.plotter, saved)
        self._framing.clear()
        if self._compare:
            self._anchors = self._centres(self.session.frame) or []
        self.render()

    def image(self) -> np.ndarray:
        """The views on screen as laid out (side by side; two rows for four results), RGB uint8: what the
        screenshot export and the tests see."""
        views = self.shown_views()
        rows = [views[:2], views[2:]] if self._compare and len(views) == 4 else [views]

        def join(images: list[np.ndarray], axis: int) -> np.ndarray:
            size = max(im.shape[1 - axis] for im in images)
            pad = [[(0, 0), (0, 0), (0, 0)] for _ in images]
            for im, p in zip(images, pad):
                p[1 - axis] = (0, size - im.shape[1 - axis])
            return np.concatenate([np.pad(im, p, constant_values=255) for im, p in zip(images, pad)], axis=axis)

        return join([join([view.view.render_image()[..., :3] for view in row], 1) for row in rows], 0)

    def snapshot(self) -> QtGui.QImage:
        from viewer.panels.video import to_qimage

        return to_qimage(self.image())

    def close_views(self) -> None:
        for view in self.hand_views:
            view.view.release()
