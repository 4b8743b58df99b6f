"""Long sessions: fifty results opened and closed in one app session leave no result, window, menu or 3D plotter
behind and the process's resident memory flat; windows opened and closed one after another are freed whole.
(Playing a 10-minute result for minutes: benchmarks/long_playback.py, BENCHMARKS.md "Long sessions".)"""

from __future__ import annotations

import gc
import os
import weakref

import numpy as np
from gui.factory import make_result, write_clip
from PySide6 import QtWidgets

from core_model.results import save_result

CYCLES = 50
WARM_UP = 5  # cycles before memory is compared: the first ones load libraries, shaders and caches


def resident_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def settle(qtbot) -> None:
    from PySide6 import QtCore

    qtbot.wait(5)
    QtWidgets.QApplication.sendPostedEvents(None, QtCore.QEvent.Type.DeferredDelete.value)
    gc.collect()


def tiled(result, frames: int):
    """``result`` repeated to ``frames`` frames (a result large enough that keeping one would show in memory)."""
    from core_model.results import Reconstruction

    reps = -(-frames // result.num_frames)
    arrays = {name: np.concatenate([value] * reps)[:frames] for name, value in result.arrays().items()
              if name not in ("window_frames", "mhsa_attention", "mhca_attention") and not name.startswith("gt_")}
    result.meta.frame_count = frames
    return Reconstruction(meta=result.meta, **arrays, gt={"keypoints": arrays["keypoints"]})


def test_fifty_results_opened_and_closed_leave_nothing_behind(window, openhand, tmp_path, qtbot):
    import pyvista as pv

    frames = 600  # 33 MB of arrays per result: a result kept per cycle would add 1.5 GB
    clip = write_clip(tmp_path / "clip.avi", n=frames, size=(160, 120))
    path = save_result(tiled(make_result(openhand, source=str(clip)), frames), tmp_path / "long.npz")
    plotters = len(pv.plotting.plotter._ALL_PLOTTERS)
    results, memory, top_level = [], [], []
    for cycle in range(CYCLES):
        assert window.open_path(path), window.last_error
        for frame in (cycle, frames // 2, frames - 1 - cycle):
            window.session.set_frame(frame)
            qtbot.wait(1)
        results.append(weakref.ref(window.session.primary.result))
        window.close_all()
        settle(qtbot)
        memory.append(resident_bytes())
        top_level.append(len(QtWidgets.QApplication.topLevelWidgets()))
    assert [ref() for ref in results] == [None] * CYCLES  # every closed result freed
    assert len(pv.plotting.plotter._ALL_PLOTTERS) == plotters  # no plotter made per result
    assert top_level[WARM_UP:] == [top_level[WARM_UP]] * (CYCLES - WARM_UP)  # no window or menu per result
    growth = (max(memory[WARM_UP:]) - memory[WARM_UP]) / memory[WARM_UP]
    print(f"resident memory after cycle {WARM_UP}: {memory[WARM_UP] / 2**20:.0f} MiB; most after: "
          f"{max(memory[WARM_UP:]) / 2**20:.0f} MiB ({growth:+.1%}); after the last: {memory[-1] / 2**20:.0f} MiB")
    assert growth < 0.05


def test_repeated_open_close_frees_every_window(qtbot, files):
    """Windows opened, shown with a result, closed and deleted one after another: each is freed whole (its Python
    half, its panels, its plotters, its menus), not only hidden."""
    import pyvista as pv

    from viewer.main_window import MainWindow

    settle(qtbot)
    top_level = len(QtWidgets.QApplication.topLevelWidgets())
    plotters = len(pv.plotting.plotter._ALL_PLOTTERS)
    gone = []
    for _ in range(5):
        win = MainWindow()
        win.show()
        assert win.open_path(files["a"])
        qtbot.waitExposed(win)
        gone += [weakref.ref(win), weakref.ref(win.panels["scene"].main.plotter), weakref.ref(win.session)]
        win.close()
        win.deleteLater()
        qtbot.wait(20)
    del win
    settle(qtbot)
    assert [ref() for ref in gone] == [None] * len(gone)
    assert len(pv.plotting.plotter._ALL_PLOTTERS) == plotters
    assert len(QtWidgets.QApplication.topLevelWidgets()) == top_level
