"""The on-disk store of per-frame arrays a run fills, and its streaming into the result file."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from core_model.pipeline.store import FrameStore


def test_rows_land_where_written_and_the_rest_is_filled(tmp_path):
    rows = {"vertices": ((2, 5, 3), np.float32), "inside": ((2, 5), bool)}
    with FrameStore(tmp_path / "r.npz", 10, rows) as store:
        views = store.views()
        assert store.folder.parent == tmp_path and store.folder.name.startswith(".r.")
        values = np.arange(3 * 30, dtype=np.float32).reshape(3, 2, 5, 3)
        store.write("vertices", [7, 2, 3], values)  # any order; 2-3 go in one write
        store.write("inside", [2], np.ones((1, 2, 5), bool))
        np.testing.assert_array_equal(views["vertices"][[7, 2, 3]], values)  # maps see writes as they land
        store.finalise()
        assert np.isnan(views["vertices"][[0, 1, 4, 5, 6, 8, 9]]).all()
        assert views["inside"].sum() == 10 and views["inside"][2].all()
        with pytest.raises(ValueError, match="values"):
            store.write("vertices", [0], np.zeros((1, 2, 4, 3), np.float32))
        with pytest.raises(ValueError, match="frames"):
            store.write("inside", [10], np.zeros((1, 2, 5), bool))
        folder = store.folder
    assert not folder.exists() and not list(tmp_path.iterdir())
    assert views["vertices"][7, 0, 0, 0] == values[0, 0, 0, 0]  # still readable after the folder went (POSIX)


def test_result_streams_from_the_store_and_loads_equal(tmp_path):
    from test_results import make_result

    from core_model.results import _whole_npy_file, load_result, save_result

    result = make_result()
    n, v = result.num_frames, result.num_vertices
    with FrameStore(tmp_path / "r.npz", n, {"vertices": ((2, v, 3), np.float32)}) as store:
        store.write("vertices", np.arange(n), result.vertices)
        mapped = store.views()["vertices"]
        assert _whole_npy_file(mapped) is not None and _whole_npy_file(mapped[1:]) is None
        assert _whole_npy_file(np.asarray(result.vertices)) is None
        result.vertices = mapped
        save_result(result, tmp_path / "r.npz")
    with zipfile.ZipFile(tmp_path / "r.npz") as archive:
        assert archive.getinfo("vertices.npy").compress_type == zipfile.ZIP_DEFLATED
    loaded = load_result(tmp_path / "r.npz")
    np.testing.assert_array_equal(loaded.vertices, np.asarray(mapped))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.npz"]
