"""The result file: round trip, atomic writing, schema and shape validation with clear messages."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core_model import __version__
from core_model.results import (
    REFINED_ARRAYS,
    SCHEMA_VERSION,
    Reconstruction,
    ResultFileError,
    ResultMeta,
    empty_arrays,
    load_result,
    save_result,
)


def make_result(n: int = 5, v: int = 12, windows: int = 2) -> Reconstruction:
    rng = np.random.default_rng(0)
    arrays = empty_arrays(n, v, map_size=4)
    for name, value in arrays.items():
        if value.dtype == bool:
            arrays[name] = rng.random(value.shape) > 0.5
        else:
            arrays[name] = rng.normal(size=value.shape).astype(np.float32)
    arrays["det_score"][1, 0] = np.nan
    meta = ResultMeta(source_path="/videos/clip.mp4", source_sha256="ab" * 32, fps=29.97, frame_count=n,
                      model_preset="lite", checkpoint_sha256="cd" * 32, hand_model="OpenHand",
                      extra={"note": "test"})
    return Reconstruction(meta=meta, **arrays, region_source=rng.integers(0, 3, (n, 2)).astype(np.int8),
                          camera=rng.normal(size=(n, 2, 3)).astype(np.float32),
                          witness=rng.integers(0, 3, (n, 2)).astype(np.int8),
                          masks=rng.integers(0, 3, (n, 8, 8)).astype(np.int8),
                          window_frames=np.array([[0, 3], [2, 5]]),
                          mhsa_attention=rng.random((windows, 2, 4, 6, 6)).astype(np.float32),
                          mhca_attention=rng.random((windows, 2, 2, 4, 3, 3)).astype(np.float32),
                          gt={"keypoints": rng.normal(size=(n, 2, 21, 3)).astype(np.float32)})


def refined_arrays(result: Reconstruction) -> dict[str, np.ndarray]:
    """A plausible refinement of ``result``: its own arrays, nudged; the second frame not refined."""
    out = {name: getattr(result, name).copy() for name in REFINED_ARRAYS if name != "gate"}
    for value in out.values():
        if value.dtype.kind == "f":
            value += 0.01
            value[1] = np.nan
        else:
            value[1] = False
    out["gate"] = np.zeros((result.num_frames, 2), np.int8)
    out["gate"][1] = 1
    return out


def test_round_trip(tmp_path):
    result = make_result()
    path = save_result(result, tmp_path / "out.npz")
    back = load_result(path)
    assert back.meta == result.meta and back.meta.software_version == __version__
    assert back.meta.schema_version == SCHEMA_VERSION and back.meta.extra == {"note": "test"}
    for name, value in result.arrays().items():
        np.testing.assert_array_equal(back.arrays()[name], value, err_msg=name)
    assert back.inside.dtype == bool and np.isnan(back.det_score[1, 0])
    assert back.num_frames == 5 and back.num_vertices == 12
    with np.load(path, allow_pickle=False) as raw:  # plain numpy can read it, meta is JSON
        assert json.loads(str(raw["meta"]))["fps"] == pytest.approx(29.97)
    assert [p.name for p in tmp_path.iterdir()] == ["out.npz"]  # no temporary left behind


def test_refined_arrays_round_trip(tmp_path):
    result = make_result()
    result.refined = refined_arrays(result)
    back = load_result(save_result(result, tmp_path / "out.npz"))
    assert sorted(back.refined) == sorted(REFINED_ARRAYS) and back.refined["gate"].dtype == np.int8
    for name, value in result.refined.items():
        np.testing.assert_array_equal(back.refined[name], value, err_msg=name)
    np.testing.assert_array_equal(back.vertices, result.vertices)  # the network's result stays beside it
    with np.load(tmp_path / "out.npz", allow_pickle=False) as raw:
        assert "refined_vertices" in raw.files and "refined_gate" in raw.files


def test_refined_names_shapes_and_completeness_are_checked(tmp_path):
    from core_model.refine.arrays import REFITTED_ARRAYS

    assert set(REFINED_ARRAYS) == set(REFITTED_ARRAYS) | {"gate"}  # what refinement makes is what the file takes
    result = make_result()
    result.refined = {**refined_arrays(result), "colour": np.zeros((5, 2), np.float32)}
    with pytest.raises(ResultFileError, match=r"unknown refined arrays \['refined_colour'\]"):
        save_result(result, tmp_path / "bad.npz")
    result.refined = refined_arrays(result)
    del result.refined["depth"]
    with pytest.raises(ResultFileError, match=r"refined arrays incomplete: missing \['refined_depth'\]"):
        result.validate()
    result.refined = refined_arrays(result)
    result.refined["vertices"] = result.refined["vertices"][:, :, :7]
    with pytest.raises(ResultFileError, match=r"refined_vertices: expected \[N, 2, V, 3\] with N=5, V=12"):
        result.validate()
    result.refined = refined_arrays(result)
    result.refined["gate"] = result.refined["gate"].astype(np.float32)
    with pytest.raises(ResultFileError, match="refined_gate: expected an integer array"):
        result.validate()
    result.refined = refined_arrays(result)
    path = save_result(result, tmp_path / "r.npz")
    with np.load(path, allow_pickle=False) as raw:
        data = {k: raw[k] for k in raw.files}
    np.savez(path, **data, refined_extra=np.zeros((5, 2), np.float32))
    with pytest.raises(ResultFileError, match=r"unknown refined arrays \['refined_extra'\]"):
        load_result(path)


def test_version_1_file_loads_without_refined_arrays(tmp_path):
    result = make_result()
    result.camera = result.witness = result.masks = None
    path = save_result(result, tmp_path / "v1.npz")
    _rewrite(path, schema_version=1)
    back = load_result(path)
    assert back.meta.schema_version == SCHEMA_VERSION == 4 and back.refined == {} and back.camera is None
    assert back.meta.extra == {"note": "test"} and back.num_frames == 5
    result.refined = refined_arrays(result)
    path = save_result(result, tmp_path / "odd.npz")
    _rewrite(path, schema_version=1)  # version 1 had no refined arrays: such a file is not one
    with pytest.raises(ResultFileError, match="schema version 1 holds no refined arrays"):
        load_result(path)


def test_version_2_and_3_files_load_without_camera_and_witness(tmp_path):
    result = make_result()
    result.camera = result.witness = result.masks = None
    path = save_result(result, tmp_path / "v2.npz")
    _rewrite(path, schema_version=2)
    back = load_result(path)
    assert back.meta.schema_version == 4 and back.camera is None and back.witness is None and back.num_frames == 5
    result.camera = make_result().camera
    path = save_result(result, tmp_path / "v3.npz")
    _rewrite(path, schema_version=3)
    back = load_result(path)
    assert back.meta.schema_version == 4 and back.camera is not None and back.witness is None
    path = save_result(make_result(), tmp_path / "odd.npz")
    _rewrite(path, schema_version=3)  # version 3 had no witness: such a file is not one
    with pytest.raises(ResultFileError, match="schema version 3 holds no witness or masks array"):
        load_result(path)
    result = make_result()
    result.witness = result.masks = None
    path = save_result(result, tmp_path / "odd2.npz")
    _rewrite(path, schema_version=2)  # version 2 had no camera: such a file is not one
    with pytest.raises(ResultFileError, match="schema version 2 holds no camera array"):
        load_result(path)


def test_optional_arrays_may_be_absent(tmp_path):
    result = make_result()
    result.window_frames = result.mhsa_attention = result.mhca_attention = result.region_source = None
    result.camera = result.witness = result.masks = None
    result.gt = {}
    back = load_result(save_result(result, tmp_path / "out.npz"))
    assert back.mhsa_attention is None and back.gt == {}


@pytest.mark.parametrize(("name", "shape", "message"), [
    ("vertices", (5, 2, 12, 2), r"vertices: expected \[N, 2, V, 3\]"),
    ("inside", (5, 2, 13), r"inside: expected \[N, 2, V\] with N=5, V=12, got \[5, 2, 13\]"),
    ("bbox", (4, 4), r"bbox: expected \[N, 4\] with N=5"),
    ("betas", (5, 2, 11), r"betas: expected \[N, 2, 10\]"),
])
def test_shapes_are_checked_before_writing(tmp_path, name, shape, message):
    result = make_result()
    setattr(result, name, np.zeros(shape, getattr(result, name).dtype))
    with pytest.raises(ResultFileError, match=message):
        save_result(result, tmp_path / "bad.npz")
    assert not list(tmp_path.iterdir())


def test_frame_count_and_window_ranges_checked(tmp_path):
    result = make_result()
    result.meta.frame_count = 9
    with pytest.raises(ResultFileError, match="frame_count 9"):
        result.validate()
    result = make_result()
    result.window_frames = np.array([[0, 3], [4, 9]])
    with pytest.raises(ResultFileError, match="window_frames"):
        result.validate()


def _rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as raw:
        data = {k: raw[k] for k in raw.files}
    meta = json.loads(str(data["meta"]))
    for key, value in changes.items():
        if key == "drop":
            data.pop(value)
        else:
            meta[key] = value
    data["meta"] = np.array(json.dumps(meta))
    np.savez(path, **data)


def test_newer_and_older_schema_versions_fail_clearly(tmp_path):
    path = save_result(make_result(), tmp_path / "r.npz")
    _rewrite(path, schema_version=SCHEMA_VERSION + 1)
    with pytest.raises(ResultFileError, match="newer InterHand Studio"):
        load_result(path)
    _rewrite(path, schema_version=0)
    with pytest.raises(ResultFileError, match="schema version 0, which this software"):
        load_result(path)


def test_older_schema_with_a_migration_loads(tmp_path, monkeypatch):
    from core_model import results

    result = make_result()
    result.camera = result.witness = result.masks = None  # no version before 3 holds either
    path = save_result(result, tmp_path / "r.npz")
    _rewrite(path, schema_version=0, drop="region_source")

    def from_v0(meta, arrays):
        arrays["region_source"] = np.full(arrays["valid"].shape, 2, np.int8)

    monkeypatch.setitem(results.MIGRATIONS, 0, from_v0)
    back = load_result(path)
    assert back.meta.schema_version == SCHEMA_VERSION and (back.region_source == 2).all()


def test_not_a_result_file(tmp_path):
    (tmp_path / "x.npz").write_text("hello")
    with pytest.raises(ResultFileError, match="not a result file"):
        load_result(tmp_path / "x.npz")
    np.savez(tmp_path / "y.npz", a=np.zeros(3))
    with pytest.raises(ResultFileError, match="no 'meta'"):
        load_result(tmp_path / "y.npz")
    np.savez(tmp_path / "z.npz", meta=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ResultFileError, match="pickle"):
        load_result(tmp_path / "z.npz")
    with pytest.raises(FileNotFoundError):
        load_result(tmp_path / "absent.npz")
    path = save_result(make_result(), tmp_path / "r.npz")
    _rewrite(path, drop="depth")
    with pytest.raises(ResultFileError, match="missing array 'depth'"):
        load_result(path)


def test_read_only_folder(tmp_path):
    """Root ignores permission bits, so the write runs in a child without the capabilities that let it (see
    ``test_pipeline_bad_input.read_only_run``); as another user the child is an ordinary one."""
    from test_pipeline_bad_input import read_only_run

    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    code = ("import sys; sys.path.insert(0, 'tests')\nfrom test_results import make_result\n"
            "from core_model.results import save_result\n"
            f"try:\n    save_result(make_result(), {str(folder / 'r.npz')!r})\n"
            "except PermissionError as exc:\n    print('refused:', exc)")
    try:
        proc = read_only_run("-c", code)
        assert proc.returncode == 0 and proc.stdout.startswith("refused:"), proc.stdout + proc.stderr
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    written = []
    original = np.lib.format.write_array

    def boom(handle, array, *args, **kwargs):  # Ctrl-C after a few arrays are in the archive
        if len(written) == 3:
            raise KeyboardInterrupt
        written.append(array)
        return original(handle, array, *args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", boom)
    with pytest.raises(KeyboardInterrupt):
        save_result(make_result(), tmp_path / "r.npz")
    assert not list(tmp_path.iterdir())
