"""What the 3D panel shows: one to MAX_SHOWN results, each in a view of its own when there are several. A result
is a loaded result's network arrays or, when it carries them, its test-time refinement's (named "<label>
(refined)", as in the charts): each counts as a result of its own. ShownList is the checkable list that picks
them; Tracks holds the smoothed hand tracks (core_model.framing) that a following camera frames and that the
linked views of a comparison are centred on."""

from __future__ import annotations

import dataclasses

import numpy as np
from PySide6 import QtCore, QtWidgets

from core_model.framing import HandTrack, bounding_spheres, half_window, smooth_track
from viewer.session import LoadedResult

MAX_SHOWN = 4
SPHERE_CHUNK = 256  # frames at a time


@dataclasses.dataclass
class FrameHands:
    """One result's hands on one frame: vertices [2, V, 3] metres, inside [2, V] bool, hands [2] bool (which hands
    to draw: a network result draws both or none, a refined one each hand it refined), text (the view's caption)."""

    vertices: np.ndarray
    inside: np.ndarray
    hands: np.ndarray
    text: str


class Shown:
    """A result the 3D panel can show: ``loaded``'s network arrays, or with ``refined`` its refinement's. Two are
    equal when they show the same arrays of the same loaded result (identity: results hold arrays)."""

    def __init__(self, loaded: LoadedResult, refined: bool = False) -> None:
        self.loaded, self.refined = loaded, refined

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Shown) and other.loaded is self.loaded and other.refined == self.refined

    def __hash__(self) -> int:
        return hash((id(self.loaded), self.refined))

    def __repr__(self) -> str:
        return f"Shown({self.name!r})"

    @property
    def name(self) -> str:
        return f"{self.loaded.label} (refined)" if self.refined else self.loaded.label

    @property
    def key(self) -> tuple[str, str, bool]:
        """What stays the same when a running model's result is replaced by the finished one (same label and
        file): the list keeps such a result checked."""
        return self.loaded.label, str(self.loaded.path), self.refined

    @property
    def hand_model(self) -> str:
        return self.loaded.result.meta.hand_model

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        result = self.loaded.result
        if self.refined:
            return result.refined["vertices"], result.refined["inside"]
        return result.vertices, result.inside

    def _drawn(self, frames: np.ndarray) -> np.ndarray:
        """[F, 2] bool: the hands drawn on ``frames``."""
        result = self.loaded.result
        ready = self.loaded.ready[frames]
        vertices = self._arrays()[0][frames]
        finite = np.isfinite(vertices).all(axis=(-1, -2))
        if self.refined:
            return finite & ready[:, None]
        both = ready & result.valid[frames].all(-1) & finite.all(-1)
        return np.repeat(both[:, None], 2, axis=1)

    def at(self, frame: int) -> FrameHands:
        vertices, inside = self._arrays()
        if not 0 <= frame < len(vertices):  # a shorter result than the first one (another clip's)
            none = np.zeros(2, bool)
            return FrameHands(np.zeros(vertices.shape[1:]), np.zeros(inside.shape[1:], bool), none,
                              f"frame {frame}: past its {len(vertices)} frames")
        vertices, inside = vertices[frame], np.asarray(inside[frame], bool)
        hands = self._drawn(np.array([frame]))[0]
        if not self.loaded.shows(frame):
            text = f"frame {frame}: not reconstructed yet"
        elif not hands.any():
            text = f"frame {frame}: " + ("not refined" if self.refined else "no two hands")
        else:
            text = f"frame {frame}: {int(inside[hands].sum())} penetrating vertices"
            if not hands.all():
                text += f" ({'right' if hands[0] else 'left'} hand only)"
        return FrameHands(vertices, inside, hands, text)

    def truth(self, frame: int) -> np.ndarray | None:
        """The ground-truth hands [2, V, 3] of ``frame`` when the result has them (for this hand model)."""
        result = self.loaded.result
        truth = result.gt.get("vertices")
        if (truth is None or truth.shape[2] != result.num_vertices or not 0 <= frame < len(truth)
                or not np.isfinite(truth[frame]).all()):
            return None
        return truth[frame]

    def spheres(self, frames: np.ndarray | None = None) -> HandTrack:
        """Per frame of ``frames`` (all: None), a sphere holding the hands drawn on it (core_model.framing); NaN
        where none. In chunks of frames: a long clip's vertices would take gigabytes at once."""
        frames = np.arange(self.loaded.result.num_frames) if frames is None else np.asarray(frames)
        parts = []
        for start in range(0, len(frames), SPHERE_CHUNK):
            chunk = frames[start:start + SPHERE_CHUNK]
            points = np.where(self._drawn(chunk)[..., None, None], self._arrays()[0][chunk], np.nan)
            parts.append(bounding_spheres(points.reshape(len(chunk), -1, 3)))
        if not parts:
            return HandTrack(np.zeros((0, 3)), np.zeros(0))
        return HandTrack(np.concatenate([p.centre for p in parts]), np.concatenate([p.radius for p in parts]))


def available(results: list[LoadedResult]) -> list[Shown]:
    """Every result the panel can show, in the session's order: each loaded result, then its refinement's."""
    out = []
    for loaded in results:
        out.append(Shown(loaded))
        if loaded.result.refined:
            out.append(Shown(loaded, refined=True))
    return out


class Tracks:
    """The smoothed hand track of each shown result (core_model.framing.smooth_track over FOLLOW_SECONDS either
    side), computed when first asked for. While a run streams frames in, :meth:`frames_ready` recomputes the
    spheres of those frames only and the track when next asked."""

    def __init__(self) -> None:
        self._spheres: dict[Shown, HandTrack] = {}
        self._tracks: dict[Shown, HandTrack] = {}

    def track(self, shown: Shown) -> HandTrack:
        if shown not in self._tracks:
            if shown not in self._spheres:
                self._spheres[shown] = shown.spheres()
            self._tracks[shown] = smooth_track(self._spheres[shown], half_window(shown.loaded.result.meta.fps))
        return self._tracks[shown]

    def frames_ready(self, loaded: LoadedResult, frames: np.ndarray) -> None:
        for shown, spheres in self._spheres.items():
            if shown.loaded is loaded:
                fresh = shown.spheres(frames)
                spheres.centre[frames], spheres.radius[frames] = fresh.centre, fresh.radius
                self._tracks.pop(shown, None)

    def keep(self, shown: list[Shown]) -> None:
        """Forget the tracks of results that are no longer open."""
        for store in (self._spheres, self._tracks):
            for gone in [s for s in store if s not in shown]:
                del store[gone]


class ShownList(QtWidgets.QPushButton):
    """A button whose popup is the checkable list of the results the 3D panel can show; ``changed`` after the
    user (or :meth:`set_checked`) changes what is checked. At least one stays checked, at most MAX_SHOWN can be
    (the others are greyed out meanwhile). The popup stays open while items are checked."""

    changed = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QtWidgets.QListWidget(self)
        self.list.setMinimumWidth(220)
        menu = QtWidgets.QMenu(self)
        action = QtWidgets.QWidgetAction(menu)
        action.setDefaultWidget(self.list)
        menu.addAction(action)
        self.setMenu(menu)  # a push button's menu arrow has room of its own, a tool button's covers the text
        self.entries: list[Shown] = []
        self.list.itemChanged.connect(self._on_item)
        self._update()

    def checked(self) -> list[Shown]:
        """The checked results, in the list's order."""
        return [shown for i, shown in enumerate(self.entries)
                if self.list.item(i).checkState() == QtCore.Qt.CheckState.Checked]

    def set_entries(self, entries: list[Shown], checked: list[Shown]) -> None:
        """List ``entries`` with ``checked`` (at most MAX_SHOWN of them) checked; does not emit ``changed``."""
        self.entries = list(entries)
        with QtCore.QSignalBlocker(self.list):
            self.list.clear()
            for shown in self.entries:
                item = QtWidgets.QListWidgetItem(shown.name, self.list)
                item.setFlags(item.flags() | QtCore.Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(QtCore.Qt.CheckState.Unchecked)
            self._check(checked)
        rows = max(1, self.list.count())  # as tall as its items
        self.list.setFixedHeight(rows * max(self.list.sizeHintForRow(0), 1) + 2 * self.list.frameWidth())
        self._update()

    def set_checked(self, checked: list[Shown]) -> None:
        """Check exactly ``checked`` and emit ``changed`` if that changes anything."""
        if checked == self.checked():
            return
        with QtCore.QSignalBlocker(self.list):
            self._check(checked)
        self._update()
        self.changed.emit()

    def _check(self, checked: list[Shown]) -> None:
        wanted = checked[:MAX_SHOWN]
        for i, shown in enumerate(self.entries):
            state = QtCore.Qt.CheckState.Checked if shown in wanted else QtCore.Qt.CheckState.Unchecked
            self.list.item(i).setCheckState(state)

    def _on_item(self, item: QtWidgets.QListWidgetItem) -> None:
        if not self.checked():  # the last one stays
            with QtCore.QSignalBlocker(self.list):
                item.setCheckState(QtCore.Qt.CheckState.Checked)
            return
        self._update()
        self.changed.emit()

    def _update(self) -> None:
        """Grey out the unchecked items while MAX_SHOWN are checked; say on the button how many are shown."""
        shown = self.checked()
        full = len(shown) >= MAX_SHOWN
        with QtCore.QSignalBlocker(self.list):
            for i in range(self.list.count()):
                item = self.list.item(i)
                enabled = not full or item.checkState() == QtCore.Qt.CheckState.Checked
                flags = item.flags()
                flag = QtCore.Qt.ItemFlag.ItemIsEnabled
                item.setFlags(flags | flag if enabled else flags & ~flag)
        self.setText(f"Results: {len(shown)} of {len(self.entries)}" if self.entries else "Results")
        self.setEnabled(len(self.entries) > 1)
        self.setToolTip("Which results the 3D views show, side by side when several are checked (at most "
                        f"{MAX_SHOWN}; a result's refinement counts as one of its own)"
                        + ("".join(f"\n• {s.name}" for s in shown) if shown else ""))
