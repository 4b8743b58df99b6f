"""Small forms that collect what a run or an export needs; they only gather values, viewer.runs and
viewer.exports act on them."""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtWidgets

from core_model.export import FORMATS
from core_model.figures.multiview import VIEW_LABELS
from core_model.network.config import PRESETS
from core_model.pipeline.region import parse_roi
from viewer.jobs import RunSettings

FIGURE_KINDS = {"multiview": "Multi-view panels of chosen frames (Fig. 8/9)",
                "accel": "Acceleration error of the loaded results (Fig. 7)",
                "attention": "Attention maps of the current frame's window (Fig. 11/12)"}


def _path_row(parent: QtWidgets.QWidget, text: str, save: bool, filters: str, directory: bool = False
              ) -> tuple[QtWidgets.QWidget, QtWidgets.QLineEdit]:
    row = QtWidgets.QWidget(parent)
    edit = QtWidgets.QLineEdit(text, row)
    browse = QtWidgets.QPushButton("…", row)

    def pick() -> None:
        if directory:
            chosen = QtWidgets.QFileDialog.getExistingDirectory(parent, "Choose a folder", edit.text())
        elif save:
            chosen, _ = QtWidgets.QFileDialog.getSaveFileName(parent, "Save as", edit.text(), filters)
        else:
            chosen, _ = QtWidgets.QFileDialog.getOpenFileName(parent, "Open", edit.text(), filters)
        if chosen:
            edit.setText(chosen)

    browse.clicked.connect(pick)
    layout = QtWidgets.QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(edit, 1)
    layout.addWidget(browse)
    return row, edit


def fit_placeholder(edit: QtWidgets.QLineEdit) -> None:
    """Make ``edit`` at least wide enough to show its whole placeholder text (a form lays a line edit out at its
    default width, which cut the longer hints off)."""
    text = edit.placeholderText()
    if not text:
        return
    option = QtWidgets.QStyleOptionFrame()
    edit.initStyleOption(option)
    margins = edit.textMargins()
    inner = edit.fontMetrics().horizontalAdvance(text) + margins.left() + margins.right() + 8  # the text's padding
    size = edit.style().sizeFromContents(QtWidgets.QStyle.ContentsType.CT_LineEdit, option,
                                         QtCore.QSize(inner, edit.sizeHint().height()), edit)
    edit.setMinimumWidth(max(edit.minimumWidth(), size.width()))


class _Form(QtWidgets.QDialog):
    def __init__(self, title: str, parent: QtWidgets.QWidget | None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.form = QtWidgets.QFormLayout(self)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Ok
                                             | QtWidgets.QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.buttons = buttons

    def finish(self) -> None:
        self.form.addRow(self.buttons)
        for edit in self.findChildren(QtWidgets.QLineEdit):
            fit_placeholder(edit)


class RunDialog(_Form):
    """Video, output file, checkpoint or preset, device, optional manual region, refinement."""

    def __init__(self, video: Path | None, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("Reconstruct a video", parent)
        default_out = str(video.with_suffix(".npz")) if video else ""
        row, self.video = _path_row(self, str(video or ""), False, "Videos (*.mp4 *.mov *.avi *.mkv *.webm)")
        self.form.addRow("Video", row)
        row, self.output = _path_row(self, default_out, True, "Result (*.npz)")
        self.form.addRow("Result file", row)
        row, self.checkpoint = _path_row(self, "", False, "Checkpoint (*.pt *.pth)")
        self.checkpoint.setPlaceholderText("empty: the shipped model (trained on synthetic renders)")
        self.form.addRow("Checkpoint", row)
        self.untrained = QtWidgets.QComboBox(self)
        self.untrained.addItems(["no", *(f"untrained {name}" for name in sorted(PRESETS))])
        self.untrained.setToolTip("an untrained network instead of a checkpoint: shows the pipeline, not the hands")
        self.form.addRow("Untrained network", self.untrained)
        self.device = QtWidgets.QLineEdit(self)
        self.device.setPlaceholderText("auto (CUDA when present)")
        self.form.addRow("Device", self.device)
        self.roi = QtWidgets.QLineEdit(self)
        self.roi.setPlaceholderText("x,y,w,h in pixels; empty: detected")
        self.form.addRow("Hand region", self.roi)
        self.refine = QtWidgets.QCheckBox("fit the hands to the detected landmarks after the network", self)
        self.refine.setToolTip("test-time refinement (interhand run --refine): kept beside the network's result; "
                               "the 3D view's \"refined\" toggle shows both")
        self.form.addRow("Refine", self.refine)
        self.finish()

    def settings(self) -> RunSettings:
        """The form's values (ValueError naming the field when one is off)."""
        if not self.video.text() or not self.output.text():
            raise ValueError("run: choose a video and a result file")
        untrained = self.untrained.currentText().removeprefix("untrained ") if self.untrained.currentIndex() else None
        if untrained and self.checkpoint.text():
            raise ValueError("run: choose a checkpoint or an untrained network, not both")
        return RunSettings(video=Path(self.video.text()), output=Path(self.output.text()),
                           checkpoint=Path(self.checkpoint.text()) if self.checkpoint.text() else None,
                           untrained=untrained, device=self.device.text() or None,
                           roi=parse_roi(self.roi.text()) if self.roi.text() else None,
                           refine=self.refine.isChecked())


class MeshExportDialog(_Form):
    def __init__(self, frame: int, num_frames: int, folder: str, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("Export meshes", parent)
        self.format = QtWidgets.QComboBox(self)
        self.format.addItems(FORMATS)
        self.form.addRow("Format", self.format)
        self.current = QtWidgets.QRadioButton(f"Current frame ({frame})", self)
        self.current.setChecked(True)
        self.range = QtWidgets.QRadioButton("Frames", self)
        self.first, self.last = QtWidgets.QSpinBox(self), QtWidgets.QSpinBox(self)
        for spin, value in ((self.first, 0), (self.last, num_frames - 1)):
            spin.setRange(0, max(num_frames - 1, 0))
            spin.setValue(value)
        span = QtWidgets.QHBoxLayout()
        for widget in (self.range, self.first, QtWidgets.QLabel("to", self), self.last):
            span.addWidget(widget)
        self.form.addRow(self.current)
        self.form.addRow(span)
        row, self.folder = _path_row(self, folder, False, "", directory=True)
        self.form.addRow("Folder", row)
        self.frame = frame
        self.finish()

    def frames(self) -> range:
        if self.current.isChecked():
            return range(self.frame, self.frame + 1)
        return range(self.first.value(), self.last.value() + 1)


class FigureDialog(_Form):
    """``results``: finished results loaded; ``refined``: how many of them hold the test-time refinement (the
    multi-view figure can put them side by side)."""

    def __init__(self, frame: int, path: str, parent: QtWidgets.QWidget | None = None, results: int = 1,
                 refined: int = 0) -> None:
        super().__init__("Figure for a paper", parent)
        self.kind = QtWidgets.QComboBox(self)
        for key, text in FIGURE_KINDS.items():
            self.kind.addItem(text, key)
        self.form.addRow("Figure", self.kind)
        self.frames = QtWidgets.QLineEdit(str(frame), self)
        self.frames.setToolTip("Multi-view: frames separated by commas, a row each. Attention: the frame whose "
                               "window is shown")
        self.form.addRow("Frames", self.frames)
        self.views = QtWidgets.QLineEdit("front alternative", self)
        self.views.setToolTip(f"Views of the multi-view figure, among: {' '.join(VIEW_LABELS)}")
        self.form.addRow("Views", self.views)
        self.compare = QtWidgets.QCheckBox(f"all {results} loaded results side by side", self)
        self.compare.setChecked(results > 1)
        self.compare.setEnabled(results > 1)
        self.compare.setToolTip("Multi-view: a group of columns per result, in the charts' order, each headed by "
                                "its label; else the shown result only")
        self.form.addRow("Methods", self.compare)
        self.refined = QtWidgets.QCheckBox("with the refinement, beside its result", self)
        self.refined.setChecked(refined > 0)
        self.refined.setEnabled(refined > 0)
        self.refined.setToolTip("Multi-view: the test-time refinement's hands (interhand run --refine) as a method "
                                "of their own, right after the network's" if refined else
                                "No loaded result holds the test-time refinement (interhand run --refine)")
        self.form.addRow("", self.refined)
        self.block, self.heads = QtWidgets.QSpinBox(self), QtWidgets.QLineEdit("1 2", self)
        self.block.setRange(1, 16)
        self.form.addRow("Attention block", self.block)
        self.form.addRow("Attention heads", self.heads)
        self.dpi = QtWidgets.QSpinBox(self)
        self.dpi.setRange(72, 1200)
        self.dpi.setValue(300)
        self.form.addRow("Resolution (dpi)", self.dpi)
        row, self.path = _path_row(self, path, True, "Figures (*.png *.pdf *.svg)")
        self.form.addRow("File", row)
        self.finish()

    def options(self) -> dict:
        """Keyword arguments of Exports.figure (ValueError naming the field when one is off)."""
        try:
            frames = [int(v) for v in self.frames.text().replace(",", " ").split()]
            heads = [int(v) - 1 for v in self.heads.text().replace(",", " ").split()]
        except ValueError:
            raise ValueError("frames and heads: expected whole numbers separated by commas or spaces") from None
        return {"kind": self.kind.currentData(), "path": Path(self.path.text()), "frames": frames,
                "views": self.views.text().split(), "block": self.block.value() - 1, "heads": heads,
                "dpi": self.dpi.value(), "compare": self.compare.isChecked() and self.compare.isEnabled(),
                "refined": self.refined.isChecked() and self.refined.isEnabled()}
