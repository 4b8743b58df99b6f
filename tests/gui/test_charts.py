"""The charts panel keeps one curve per result and chart for as long as the result is loaded (a streamed update
hands new values to it instead of rebuilding the plots), and says so when nothing is open."""

from __future__ import annotations

import numpy as np
from gui.pixels import qimage_array

from core_model.results import load_result
from viewer.session import LoadedResult


def test_empty_charts_say_no_result_is_open(window, files, qtbot):
    charts = window.panels["charts"]
    assert charts.accel.listDataItems() == [] and charts.depth.listDataItems() == []
    assert all(text.isVisible() and text.toPlainText() == "no result open" for text in charts.empty_texts)
    assert not any(cursor.isVisible() for cursor in charts.cursors)
    axes = [plot.getAxis(side) for plot in (charts.accel, charts.depth) for side in ("left", "bottom")]
    assert not any(axis.isVisible() for axis in axes) and not charts.legend.isVisible()  # no made-up axis
    empty = qimage_array(charts.snapshot())
    window.open_path(files["a"])
    qtbot.wait(30)
    assert not any(text.isVisible() for text in charts.empty_texts)
    assert all(cursor.isVisible() for cursor in charts.cursors) and all(axis.isVisible() for axis in axes)
    assert charts.accel.getAxis("left").labelText and charts.depth.getAxis("bottom").labelText == "frame"
    assert not np.array_equal(qimage_array(charts.snapshot()), empty)
    window.close_all()
    assert charts.curves == [] and all(text.isVisible() for text in charts.empty_texts)
    assert not any(axis.isVisible() for axis in axes)


def test_legend_sits_above_the_charts_not_on_the_curves(window, files, qtbot):
    """One legend for both charts, in a row of its own: its entries never overlap a plotting area."""
    charts = window.panels["charts"]
    window.open_path(files["a"])
    window.open_path(files["b"])
    qtbot.wait(100)  # laid out
    assert charts.legend_labels() == ["a", "b"] and charts.legend.isVisible()
    legend = charts.legend.sceneBoundingRect()
    assert legend.width() > 0 and legend.height() > 0
    for plot in (charts.accel, charts.depth):
        assert not legend.intersects(plot.vb.sceneBoundingRect())
        assert plot.legend is None  # none inside a plot
    image = qimage_array(charts.snapshot())
    box = charts.view.mapFromScene(legend).boundingRect()
    assert (image[box.top():box.bottom(), box.left():box.right()] < 128).any()  # its labels are drawn


def test_curves_persist_while_results_come_and_go(window, files):
    charts = window.panels["charts"]
    window.open_path(files["a"])
    (accel_a,), (depth_a,) = charts.accel.listDataItems(), charts.depth.listDataItems()
    b = window.open_result(files["b"])
    assert charts.accel.listDataItems()[0] is accel_a and charts.depth.listDataItems()[0] is depth_a
    assert len(charts.curves) == 4
    assert charts.legend_labels() == ["a", "b"]
    window.session.remove_result(b)
    assert charts.accel.listDataItems() == [accel_a] and charts.depth.listDataItems() == [depth_a]
    assert charts.legend_labels() == ["a"]


def test_streamed_frames_update_the_same_curves(window, files, qtbot):
    charts = window.panels["charts"]
    result = load_result(files["a"])
    n = result.num_frames
    stream = LoadedResult("run", result, np.zeros(n, bool))
    window.session.add_result(stream, primary=True)
    accel, depth = charts.curves
    assert np.isnan(charts.series[0][1].values).all()  # nothing finished yet: a gap, not zeros
    x_range = charts.accel.vb.viewRange()[0]
    assert x_range[0] <= 0 and x_range[1] >= n - 1  # the frame axis spans the sequence from the start
    stream.ready[: n // 2] = True
    window.session.frames_updated.emit(np.arange(n // 2))
    qtbot.waitUntil(lambda: np.isfinite(charts.series[0][1].values).sum() == n // 2, timeout=2000)
    assert charts.curves == [accel, depth]
    before = charts.series[0]
    charts.recompute()  # nothing changed: the series are not computed again
    assert charts.series[0] is before
    stream.ready[:] = True
    window.session.replace_result(stream, LoadedResult("run", result, np.ones(n, bool)))
    assert charts.curves == [accel, depth]
    assert np.isfinite(charts.series[0][1].values).all()
    np.testing.assert_array_equal(depth.yData, charts.series[0][1].values)
