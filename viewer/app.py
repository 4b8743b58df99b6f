"""InterHand Studio's main window. For now it shows the hand model in use: both hands, turnable, in named
poses, with the model and the compute device in the status bar; the video pipeline and result panels join it as
core_model provides them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np
from PySide6 import QtCore, QtWidgets

from core_model.device import describe_device, pick_device
from core_model.handmodel.figures import posed_pair
from core_model.handmodel.layer import HandModel
from core_model.handmodel.poses import NAMED_POSES
from core_model.handmodel.registry import MODEL_CHOICES, load_hand_model
from core_model.render import HAND_COLOURS


class HandView(QtWidgets.QWidget):
    """A 3D view of both hand meshes (pyvistaqt), updated in place when the pose changes."""

    def __init__(self, model: HandModel, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        from pyvistaqt import QtInteractor

        self.model = model
        self.plotter = QtInteractor(self)
        self.plotter.set_background("white")
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plotter.interactor)
        self._meshes: list = []

    def show_pose(self, pose_name: str) -> None:
        import pyvista as pv

        vertices = posed_pair(self.model, pose_name)
        if not self._meshes:
            for hand, layer in enumerate(self.model.sides):
                faces = layer.data.faces
                cells = np.hstack([np.full((len(faces), 1), 3), faces]).ravel()
                mesh = pv.PolyData(vertices[hand].astype(np.float64), cells)
                self.plotter.add_mesh(mesh, color=HAND_COLOURS[hand], smooth_shading=True, specular=0.2)
                self._meshes.append(mesh)
            self.reset_camera()
        else:
            for mesh, verts in zip(self._meshes, vertices):
                mesh.points = verts.astype(np.float64)
                mesh.compute_normals(inplace=True)
        self.plotter.render()

    def reset_camera(self) -> None:
        self.plotter.view_vector((0, 0, -1), viewup=(0, -1, 0))  # camera frame: y down, looking along +z
        self.plotter.reset_camera()

    def close_plotter(self) -> None:
        self.plotter.close()


class MainWindow(QtWidgets.QMainWindow):
    def __init__(self, hand_model: str = "auto", pose: str = "relaxed") -> None:
        super().__init__()
        self.setWindowTitle("InterHand Studio")
        self.resize(1100, 760)
        self.model = load_hand_model(hand_model)
        self.view = HandView(self.model, self)
        self.setCentralWidget(self.view)

        dock = QtWidgets.QDockWidget("Hand model", self)
        dock.setObjectName("hand-model-dock")
        panel = QtWidgets.QWidget(dock)
        form = QtWidgets.QFormLayout(panel)
        self.pose_box = QtWidgets.QComboBox(panel)
        self.pose_box.addItems(sorted(NAMED_POSES))
        form.addRow("Pose", self.pose_box)
        reset = QtWidgets.QPushButton("Reset camera", panel)
        reset.clicked.connect(lambda: (self.view.reset_camera(), self.view.plotter.render()))
        form.addRow(reset)
        dock.setWidget(panel)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, dock)

        self.pose_box.currentTextChanged.connect(self.view.show_pose)
        self.pose_box.setCurrentText(pose)
        self.view.show_pose(pose)
        self.statusBar().showMessage(
            f"Hand model: {self.model.name} ({self.model.num_vertices} vertices per hand)  ·  "
            f"Device: {describe_device(pick_device())}")

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        self.view.close_plotter()
        super().closeEvent(event)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="interhand-studio", description="InterHand Studio desktop application")
    parser.add_argument("--hand-model", choices=MODEL_CHOICES, default="auto")
    parser.add_argument("--pose", choices=sorted(NAMED_POSES), default="relaxed")
    args = parser.parse_args(argv)
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("InterHand Studio")
    app.setOrganizationName("InterHand Studio")
    window = MainWindow(args.hand_model, args.pose)
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
