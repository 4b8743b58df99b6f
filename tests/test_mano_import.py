"""MANO import without chumpy: a MANO-format pickle written here (the real MANO cannot be shipped) round-trips."""

from __future__ import annotations

import os
import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse
import torch
import trimesh

from core_model.handmodel.data import HandModelFileError
from core_model.handmodel.keypoints import MANO_PARENTS
from core_model.handmodel.mano_import import MANO_FINGERTIP_IDS, import_mano, read_mano_pickle
from core_model.handmodel.registry import load_hand_model, mano_available


def _band(a: list[int], b: list[int]) -> list[tuple[int, int, int]]:
    """Triangles joining two closed rings of possibly different sizes, walked by angle."""
    faces, i, j = [], 0, 0
    while i < len(a) or j < len(b):
        if j >= len(b) or (i < len(a) and (i + 1) / len(a) <= (j + 1) / len(b)):
            faces.append((a[i % len(a)], a[(i + 1) % len(a)], b[j % len(b)]))
            i += 1
        else:
            faces.append((a[i % len(a)], b[(j + 1) % len(b)], b[j % len(b)]))
            j += 1
    return faces


def _mano_shaped_mesh() -> tuple[np.ndarray, np.ndarray]:
    """778 vertices and 1538 faces like MANO: a tube closed at the far end, open at the wrist (16-vertex hole)."""
    rings = [list(range(16 * r, 16 * r + 16)) for r in range(48)] + [list(range(768, 777))]
    verts = [(-0.002 * r, 0.01 * np.cos(2 * np.pi * k / len(ring)), 0.01 * np.sin(2 * np.pi * k / len(ring)))
             for r, ring in enumerate(rings) for k in range(len(ring))]
    verts.append((-0.002 * 49, 0.0, 0.0))
    faces = [f for r in range(len(rings) - 1) for f in _band(rings[r], rings[r + 1])]
    faces += [(rings[-1][k], rings[-1][(k + 1) % 9], 777) for k in range(9)]
    return np.array(verts), np.array(faces, dtype=np.uint32)


class FakeCh:
    """Pickles like chumpy.ch.Ch: class chumpy.ch.Ch, state a dict holding the array under 'x'."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x

    def __getstate__(self):
        return {"x": self.x, "_dirty_vars": {"x"}, "_itr": None}


@pytest.fixture(scope="module")
def mano_arrays() -> dict[str, object]:
    rng = np.random.default_rng(0)
    v, f = _mano_shaped_mesh()
    weights = rng.uniform(size=(778, 16))
    regressor = np.where(rng.uniform(size=(16, 778)) < 0.02, rng.uniform(size=(16, 778)), 0.0)
    regressor /= regressor.sum(1, keepdims=True)
    kintree = np.array([list(MANO_PARENTS), list(range(16))], dtype=np.int64)
    kintree[0, 0] = 4294967295
    return {
        "v_template": v, "f": f, "weights": weights / weights.sum(1, keepdims=True),
        "J_regressor": scipy.sparse.csc_matrix(regressor), "kintree_table": kintree,
        "posedirs": rng.normal(0, 1e-3, (778, 3, 135)), "shapedirs": FakeCh(rng.normal(0, 1e-3, (778, 3, 10))),
        "hands_components": np.linalg.qr(rng.normal(size=(45, 45)))[0], "hands_mean": rng.normal(0, 0.1, 45),
        "hands_coeffs": rng.normal(size=(20, 45)), "J": rng.normal(size=(16, 3)), "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


def _write_pickle(path, arrays: dict[str, object]) -> None:
    """Write as MANO's files are: protocol 2, chumpy.ch.Ch objects, a scipy sparse J_regressor."""
    chumpy, chumpy_ch = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    FakeCh.__module__, FakeCh.__qualname__, FakeCh.__name__ = "chumpy.ch", "Ch", "Ch"
    chumpy_ch.Ch = FakeCh
    saved = {k: sys.modules.get(k) for k in ("chumpy", "chumpy.ch")}
    sys.modules.update({"chumpy": chumpy, "chumpy.ch": chumpy_ch})
    try:
        path.write_bytes(pickle.dumps(arrays, protocol=2))
    finally:
        for key, module in saved.items():
            if module is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = module
    assert b"chumpy.ch" in path.read_bytes()


@pytest.fixture
def mano_source(tmp_path, mano_arrays):
    src = tmp_path / "mano_v1_2" / "models"
    src.mkdir(parents=True)
    left = dict(mano_arrays, v_template=mano_arrays["v_template"] * [-1, 1, 1])
    _write_pickle(src / "MANO_RIGHT.pkl", mano_arrays)
    _write_pickle(src / "MANO_LEFT.pkl", left)  # shapedirs as shipped: the right's, unmirrored
    return src


def test_synthetic_mano_pickle_round_trips_without_chumpy(mano_source, mano_arrays):
    assert "chumpy" not in sys.modules
    arrays = read_mano_pickle(mano_source / "MANO_RIGHT.pkl")
    for key in ("v_template", "posedirs", "weights", "kintree_table", "f", "hands_components", "hands_mean"):
        np.testing.assert_array_equal(arrays[key], mano_arrays[key])
    np.testing.assert_array_equal(arrays["shapedirs"], mano_arrays["shapedirs"].x)
    np.testing.assert_array_equal(arrays["J_regressor"], mano_arrays["J_regressor"].toarray())
    assert "chumpy" not in sys.modules


def test_import_writes_npz_that_the_hand_model_uses(mano_source, mano_arrays, tmp_path, monkeypatch):
    monkeypatch.setenv("INTERHAND_MANO_DIR", str(tmp_path / "user-data"))
    assert not mano_available()
    written = import_mano(mano_source)
    assert sorted(p.name for p in written) == ["MANO_LEFT.npz", "MANO_RIGHT.npz"]
    assert mano_available()
    model = load_hand_model("auto")
    assert model.name == "MANO" and model.num_vertices == 778
    np.testing.assert_array_equal(model.right.data.shapedirs, mano_arrays["shapedirs"].x.astype(np.float32))
    # The left-hand fix (smplx issue 48): x of the left shapedirs is negated when it was the right's.
    np.testing.assert_array_equal(model.left.data.shapedirs[:, 0], -model.right.data.shapedirs[:, 0])
    np.testing.assert_array_equal(model.left.data.shapedirs[:, 1:], model.right.data.shapedirs[:, 1:])
    assert model.right.data.fingertip_ids.tolist() == list(MANO_FINGERTIP_IDS)
    for layer in model.sides:  # the wrist hole is capped, outward on both sides, with no vertex added
        mesh = trimesh.Trimesh(layer.data.v_template, layer.data.closed_faces, process=False)
        assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0
        assert len(layer.data.closed_faces) == 1538 + 14
    out = model(torch.zeros(3, 2, 10), torch.zeros(3, 2, 3), torch.zeros(3, 2, 45))
    assert out.vertices.shape == (3, 2, 778, 3) and out.keypoints.shape == (3, 2, 21, 3)


def test_a_pickle_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (tmp_path / "MANO_RIGHT.pkl").write_bytes(pickle.dumps({"v_template": Evil()}, protocol=2))
    with pytest.raises(HandModelFileError, match=r"refused to load .*system"):
        read_mano_pickle(tmp_path / "MANO_RIGHT.pkl")
    assert not marker.exists()


def test_wrong_shape_names_the_key(tmp_path, mano_arrays):
    _write_pickle(tmp_path / "MANO_RIGHT.pkl", dict(mano_arrays, posedirs=np.zeros((778, 3, 134))))
    with pytest.raises(HandModelFileError, match=r"posedirs: expected shape \(778, 3, 135\), got \(778, 3, 134\)"):
        read_mano_pickle(tmp_path / "MANO_RIGHT.pkl")


def test_missing_key_and_garbage_are_named(tmp_path, mano_arrays):
    _write_pickle(tmp_path / "MANO_RIGHT.pkl", {k: v for k, v in mano_arrays.items() if k != "weights"})
    with pytest.raises(HandModelFileError, match="missing key 'weights'"):
        read_mano_pickle(tmp_path / "MANO_RIGHT.pkl")
    (tmp_path / "MANO_LEFT.pkl").write_bytes(b"this is not a pickle")
    with pytest.raises(HandModelFileError, match="not a MANO pickle"):
        read_mano_pickle(tmp_path / "MANO_LEFT.pkl")


def test_missing_file_names_the_path_and_how_to_get_mano(tmp_path):
    with pytest.raises(HandModelFileError) as err:
        import_mano(tmp_path)
    assert str(tmp_path / "MANO_RIGHT.pkl") in str(err.value)
    assert "mano.is.tue.mpg.de" in str(err.value) and "interhand mano-import" in str(err.value)
    with pytest.raises(HandModelFileError, match="MANO is not imported"):
        load_hand_model("mano")
