"""The keyboard map: the keys that scrub the video and move the 3D views anywhere in the main window, and the
Help ▸ Keyboard shortcuts table, which lists them (and the menus' shortcuts) from the same data, so the list is
always what the keys do."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from PySide6 import QtCore, QtGui, QtWidgets


@dataclasses.dataclass(frozen=True)
class Binding:
    """``keys``: key sequences in Qt's portable text ("Shift+Right"), any of which does ``what``; ``name``: the
    command it runs (a key of the commands the window gives :func:`bind`); ``group``: its heading in the table."""

    keys: tuple[str, ...]
    what: str
    name: str
    group: str


KEY_MAP: tuple[Binding, ...] = (
    Binding(("Left",), "previous frame", "frame-1", "Frames"),
    Binding(("Right",), "next frame", "frame+1", "Frames"),
    Binding(("Shift+Left", "PgUp"), "10 frames back", "frame-10", "Frames"),
    Binding(("Shift+Right", "PgDown"), "10 frames forward", "frame+10", "Frames"),
    Binding(("Home",), "first frame", "first", "Frames"),
    Binding(("End",), "last frame", "last", "Frames"),
    Binding(("Space",), "play / pause", "play", "Frames"),
    Binding(("R",), "reset the 3D camera (the current view preset again)", "reset", "3D views"),
    Binding(("V",), "next view preset (camera, front, side, top, alternative)", "preset+1", "3D views"),
    Binding(("Shift+V",), "previous view preset", "preset-1", "3D views"),
)


def bind(window: QtWidgets.QWidget, commands: dict[str, Callable[[], object]]) -> list[QtGui.QShortcut]:
    """Window-wide shortcuts on ``window`` for every binding of :data:`KEY_MAP`, each running its command."""
    missing = sorted({b.name for b in KEY_MAP} - set(commands))
    if missing:
        raise ValueError(f"commands: none given for {missing}")
    shortcuts = []
    for binding in KEY_MAP:
        for keys in binding.keys:
            shortcut = QtGui.QShortcut(QtGui.QKeySequence(keys), window)
            shortcut.setContext(QtCore.Qt.ShortcutContext.WindowShortcut)
            shortcut.activated.connect(commands[binding.name])
            shortcuts.append(shortcut)
    return shortcuts


def menu_shortcuts(menu_bar: QtWidgets.QMenuBar) -> list[tuple[str, str, str]]:
    """(menu, item, keys) of every menu item that has a shortcut, in menu order."""
    out = []

    def walk(menu: QtWidgets.QMenu, title: str) -> None:
        for action in menu.actions():
            if action.menu() is not None:
                walk(action.menu(), f"{title} ▸ {_plain(action.text())}")
            elif not action.shortcut().isEmpty():
                out.append((title, _plain(action.text()),
                            action.shortcut().toString(QtGui.QKeySequence.SequenceFormat.NativeText)))

    for action in menu_bar.actions():
        if action.menu() is not None:
            walk(action.menu(), _plain(action.text()))
    return out


def _plain(text: str) -> str:
    return text.replace("&&", "\0").replace("&", "").replace("\0", "&").rstrip("…").rstrip(".")


def native(keys: str) -> str:
    """``keys`` as this platform writes them (Shift+Right, ⇧→ on macOS)."""
    return QtGui.QKeySequence(keys).toString(QtGui.QKeySequence.SequenceFormat.NativeText)


class KeyMapDialog(QtWidgets.QDialog):
    """Help ▸ Keyboard shortcuts: the keys of :data:`KEY_MAP` by group, then the menus' shortcuts."""

    def __init__(self, menu_bar: QtWidgets.QMenuBar, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        rows: list[tuple[str, str] | str] = []  # (keys, what) or a group heading
        group = None
        for binding in KEY_MAP:
            if binding.group != group:
                group = binding.group
                rows.append(group)
            rows.append((" or ".join(native(k) for k in binding.keys), binding.what))
        rows.append("Menus")
        rows += [(keys, f"{menu} ▸ {item}") for menu, item, keys in menu_shortcuts(menu_bar)]
        self.table = QtWidgets.QTableWidget(len(rows), 2, self)
        self.table.setHorizontalHeaderLabels(["Keys", "Does"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.NoSelection)
        self.table.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        bold = QtGui.QFont(self.font())
        bold.setBold(True)
        for r, row in enumerate(rows):
            if isinstance(row, str):
                item = QtWidgets.QTableWidgetItem(row)
                item.setFont(bold)
                self.table.setItem(r, 0, item)
                self.table.setSpan(r, 0, 1, 2)
                continue
            for c, text in enumerate(row):
                self.table.setItem(r, c, QtWidgets.QTableWidgetItem(text))
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.resizeColumnsToContents()
        self.table.resizeRowsToContents()
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        width = self.table.horizontalHeader().length() + 2 * self.table.frameWidth() + 40
        height = self.table.verticalHeader().length() + self.table.horizontalHeader().height() + 90
        self.resize(max(width, 480), min(height, 640))

    def rows(self) -> list[tuple[str, str]]:
        """The table's rows as (first column, second column) texts; a heading has an empty second."""
        return [tuple((self.table.item(r, c).text() if self.table.item(r, c) else "") for c in range(2))
                for r in range(self.table.rowCount())]
