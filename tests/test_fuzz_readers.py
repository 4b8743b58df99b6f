"""Property-based tests (hypothesis) of every reader of a file a user may hand the app or the CLI: result files,
workspaces, checkpoints, InterHand2.6M and HIC annotations, image folders. Each starts from a valid file and breaks
it (wrong shapes and types, NaN and infinity, missing and extra parts, sizes declared but not there, a schema from
the future, truncation, flipped bytes, a pickle payload); the reader either reads it or refuses it with one line
that names the file, never another exception, a hang or an unbounded read.

The examples are drawn the same way on every run (``derandomize``) so CI is repeatable; ``INTERHAND_FUZZ_SCALE=20``
draws twenty times as many, at random, to search further.
"""

from __future__ import annotations

import copy
import io
import json
import math
import os
import pickle
import struct
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SCALE = float(os.environ.get("INTERHAND_FUZZ_SCALE", "1"))


def fuzz(examples: int):
    return settings(max_examples=max(1, int(examples * SCALE)), deadline=None, derandomize=SCALE <= 1,
                    database=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                          HealthCheck.too_slow, HealthCheck.data_too_large])


class Quiet(dict):
    """A fixture's dict that a failing example's report shows by name, not by its (large) content."""

    def __repr__(self) -> str:
        return f"<{len(self)} entries>"


def assert_clear(exc: BaseException, *names: str) -> None:
    """One line that names one of the files ``names``."""
    message = str(exc)
    assert "\n" not in message, message
    assert any(name in message for name in names), message


# ---- generic mutations of plain JSON-like data -----------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12)


def paths_of(value, prefix=(), limit=4000) -> list[tuple]:
    """Every place in a JSON-like value (keys and indices from the top), at most ``limit``."""
    out = [prefix]
    stack = [(value, prefix)]
    while stack and len(out) < limit:
        node, at = stack.pop()
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in children:
            out.append((*at, key))
            stack.append((child, (*at, key)))
    return out


def mutate(data, value, draw_data) -> object:
    """``value`` with one place changed: removed, replaced by anything, emptied, or retyped."""
    value = copy.deepcopy(value)
    path = draw_data.draw(st.sampled_from(paths_of(value)), label="path")
    kind = draw_data.draw(st.sampled_from(["delete", "replace", "empty", "stringify", "wrap"]), label="mutation")
    if not path:
        return draw_data.draw(json_values, label="top")
    parent = value
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if kind == "delete":
        del parent[key]
    elif kind == "replace":
        parent[key] = draw_data.draw(json_values, label="value")
    elif kind == "empty":
        parent[key] = type(parent[key])() if isinstance(parent[key], (list, dict, str)) else None
    elif kind == "stringify":
        parent[key] = str(parent[key])
    else:
        parent[key] = [parent[key]]
    return value


def damage_bytes(raw: bytes, draw_data) -> bytes:
    """``raw`` truncated, or with a few bytes flipped."""
    if draw_data.draw(st.booleans(), label="truncate"):
        return raw[:draw_data.draw(st.integers(0, max(0, len(raw) - 1)), label="cut")]
    out = bytearray(raw)
    for _ in range(draw_data.draw(st.integers(1, 8), label="flips")):
        at = draw_data.draw(st.integers(0, len(out) - 1), label="at")
        out[at] ^= draw_data.draw(st.integers(1, 255), label="xor")
    return bytes(out)


# ---- result files ---------------------------------------------------------------------------------------------

def npy_bytes(value: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, value, allow_pickle=allow_pickle)
    return buffer.getvalue()


def huge_npy(shape: tuple[int, ...], dtype=np.float32) -> bytes:
    """A .npy header declaring ``shape`` followed by a few bytes of data only."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                  "fortran_order": False, "shape": shape})
    return buffer.getvalue() + b"\0" * 64


def write_members(path: Path, members: dict[str, bytes], compress: bool = True) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


@pytest.fixture(scope="module")
def result_members() -> dict[str, bytes]:
    """A valid result file's members, by member name."""
    from test_results import make_result, refined_arrays

    from core_model.results import FORMAT

    result = make_result()
    result.refined = refined_arrays(result)
    meta = {**__import__("dataclasses").asdict(result.meta), "format": FORMAT}
    members = {"meta.npy": npy_bytes(np.array(json.dumps(meta)))}
    members.update({f"{name}.npy": npy_bytes(np.asarray(value)) for name, value in result.arrays().items()})
    return Quiet(members)


DTYPES = ["float16", "float32", "float64", "int8", "int64", "uint8", "bool", "complex64", "<U3", "V4",
          [("a", "<f4"), ("b", "<i2")]]


def _broken_result(result_members, data) -> dict[str, bytes]:
    members = dict(result_members)
    names = sorted(n for n in members if n != "meta.npy")
    kind = data.draw(st.sampled_from(["drop", "add", "reshape", "retype", "values", "meta", "huge", "pickle",
                                      "not-npy", "bytes"]), label="kind")
    name = data.draw(st.sampled_from(names), label="array")
    if kind == "drop":
        del members[data.draw(st.sampled_from(sorted(members)), label="dropped")]
    elif kind == "add":
        extra = data.draw(st.sampled_from(["extra", "gt_extra", "refined_extra", "gt_vertices", "camera"]))
        members[f"{extra}.npy"] = npy_bytes(np.zeros(data.draw(st.lists(st.integers(0, 6), max_size=4)), np.float32))
    elif kind == "reshape":
        value = np.load(io.BytesIO(members[name]))
        shape = data.draw(st.lists(st.integers(0, 7), max_size=6), label="shape")
        members[name] = npy_bytes(np.resize(value, shape) if value.size else np.zeros(shape, value.dtype))
    elif kind == "retype":
        value = np.load(io.BytesIO(members[name]))
        dtype = np.dtype(data.draw(st.sampled_from(DTYPES), label="dtype"))
        members[name] = npy_bytes(np.zeros(value.shape, dtype))
    elif kind == "values":
        value = np.load(io.BytesIO(members[name]))
        if value.size:
            special = data.draw(st.sampled_from([np.nan, np.inf, -np.inf, 1e30, -1, 0, 2**40]), label="special")
            flat = value.reshape(-1).copy()
            at = data.draw(st.integers(0, flat.size - 1), label="where")
            with np.errstate(invalid="ignore", over="ignore"):
                flat[at] = np.array(special).astype(flat.dtype) if flat.dtype.kind != "b" else bool(special)
            members[name] = npy_bytes(flat.reshape(value.shape))
    elif kind == "meta":
        meta = json.loads(str(np.load(io.BytesIO(members["meta.npy"]))))
        if data.draw(st.booleans(), label="raw meta"):
            text = data.draw(st.sampled_from(["", "{", "[" * 5000 + "]" * 5000, "null", '"text"', "NaN",
                                              json.dumps({**meta, "schema_version": 99})]), label="raw")
        else:
            text = json.dumps(mutate(data, meta, data))
        members["meta.npy"] = npy_bytes(np.array(text))
    elif kind == "huge":
        members[name] = huge_npy(tuple(data.draw(st.lists(st.integers(1, 2**40), min_size=1, max_size=4),
                                                 label="huge shape")))
    elif kind == "pickle":
        members[name] = npy_bytes(np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    elif kind == "not-npy":
        members[data.draw(st.sampled_from(["notes.txt", name[:-4]]), label="member")] = b"hello"
    return members


@fuzz(120)
@given(data=st.data())
def test_result_files(tmp_path_factory, result_members, data):
    from core_model.figures.series import acceleration_series, penetration_series
    from core_model.results import ResultFileError, load_result

    path = tmp_path_factory.mktemp("result") / "r.npz"
    members = _broken_result(result_members, data)
    write_members(path, members, compress=data.draw(st.booleans(), label="compress"))
    if data.draw(st.integers(0, 9), label="damage?") == 0:
        path.write_bytes(damage_bytes(path.read_bytes(), data))
    try:
        result = load_result(path)
    except ResultFileError as exc:
        assert_clear(exc, path.name)
        return
    result.validate()  # what loads is a result: every shape fits
    acceleration_series(result)  # and what the viewer computes on opening it does not fail
    penetration_series(result)


def test_result_with_huge_declared_arrays_is_refused_without_reading(tmp_path, result_members):
    """Arrays that declare terabytes (the zip's table agrees or not) are refused from their headers: nothing near
    that size is ever allocated."""
    from core_model.results import ResultFileError, load_result

    huge = dict(result_members)
    huge["vertices.npy"] = huge_npy((2**40, 2, 12, 3))
    honest = dict(result_members)
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as archive:  # a real zip bomb
        for name, raw in honest.items():
            if name != "depth.npy":
                archive.writestr(name, raw)
        info = zipfile.ZipInfo("depth.npy")
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=True) as member:
            member.write(huge_npy((2**31, 2, 12), np.float32)[:-64])
            block = bytes(1 << 24)
            for _ in range(4):  # 64 MiB of zeros, of the 2**31 * 24 * 4 declared
                member.write(block)
    tracemalloc.start()
    try:
        for name, members in (("huge.npz", huge), ("bomb.npz", None)):
            path = tmp_path / name
            if members is not None:
                write_members(path, members)
            with pytest.raises(ResultFileError) as caught:
                load_result(path)
            assert_clear(caught.value, name)
        assert tracemalloc.get_traced_memory()[1] < 32 << 20
    finally:
        tracemalloc.stop()


# ---- workspaces ---------------------------------------------------------------------------------------------

def valid_workspace() -> dict:
    from viewer.workspace_file import FORMAT, VERSION

    camera = {"position": [0.1, 0.2, -0.5], "focal_point": [0, 0, 0.9], "up": [0, -1, 0], "view_angle": 30.0,
              "parallel": False}
    return {"format": FORMAT, "version": VERSION, "results": ["/data/a.npz", "/data/b.npz"], "video": "/data/v.mp4",
            "frame": 3, "cameras": {"main": camera, "second": dict(camera), "preset": "camera",
                                    "second_preset": "alternative", "linked": True, "refined": False},
            "layout": "AAAA", "geometry": "AAAA", "overlay": "keypoints",
            "relative": {"results": ["a.npz", "b.npz"], "video": "v.mp4"}}


@fuzz(150)
@given(data=st.data())
def test_workspace_files(tmp_path_factory, data):
    from viewer.workspace_file import Workspace, WorkspaceError, load_workspace

    path = tmp_path_factory.mktemp("workspace") / "w.json"
    text = json.dumps(mutate(data, valid_workspace(), data))
    raw = text.encode()
    if data.draw(st.integers(0, 5), label="damage?") == 0:
        raw = damage_bytes(raw, data)
    path.write_bytes(raw)
    try:
        workspace = load_workspace(path)
    except WorkspaceError as exc:
        assert_clear(exc, path.name)
        return
    assert isinstance(workspace, Workspace) and all(isinstance(p, str) for p in workspace.results)
    assert isinstance(workspace.frame, int) and workspace.frame >= 0


def test_workspace_nested_deeply_or_huge(tmp_path):
    from viewer.workspace_file import MAX_BYTES, WorkspaceError, load_workspace

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200000 + "]" * 200000)
    big = tmp_path / "big.json"
    with open(big, "wb") as handle:
        handle.truncate(MAX_BYTES + 1)
    for path in (deep, big):
        with pytest.raises(WorkspaceError) as caught:
            load_workspace(path)
        assert_clear(caught.value, path.name)


# ---- checkpoints --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoint_payload(tmp_path_factory, openhand) -> dict:
    from core_model.network import STCNet, STCNetConfig, save_checkpoint

    torch.manual_seed(0)
    net = STCNet(STCNetConfig.from_preset("lite", input_size=64, frames=4), openhand, imagenet_weights=None)
    path = save_checkpoint(tmp_path_factory.mktemp("checkpoint") / "c.pt", net, extra={"epoch": 3})
    return Quiet(torch.load(path, map_location="cpu", weights_only=True))


class Evil:
    """Pickles as a call to os.system: what weights_only loading must refuse."""

    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def _broken_checkpoint(payload: dict, data) -> object:
    payload = {k: (dict(v) if isinstance(v, dict) else v) for k, v in payload.items()}
    kind = data.draw(st.sampled_from(["plain", "config", "drop-weight", "add-weight", "reshape", "retype",
                                      "nan", "not-tensor", "evil", "architecture"]), label="kind")
    state = payload["state_dict"]
    name = data.draw(st.sampled_from(sorted(state)), label="weight")
    if kind == "plain":
        plain = mutate(data, {k: v for k, v in payload.items() if k != "state_dict"}, data)
        payload = {**plain, "state_dict": state} if isinstance(plain, dict) else plain
    elif kind == "config":
        payload["config"] = mutate(data, payload["config"], data)
    elif kind == "drop-weight":
        del state[name]
    elif kind == "add-weight":
        state["decoder.extra.weight"] = torch.zeros(3)
    elif kind == "reshape":
        shape = data.draw(st.lists(st.integers(0, 5), max_size=4), label="shape")
        state[name] = torch.zeros(shape)
    elif kind == "retype":
        dtype = data.draw(st.sampled_from([torch.int64, torch.bool, torch.complex64, torch.float16, torch.uint8]))
        state[name] = torch.zeros(state[name].shape, dtype=dtype)
    elif kind == "nan":
        value = state[name].clone().float()
        if value.numel():
            value.view(-1)[0] = data.draw(st.sampled_from([math.nan, math.inf]))
        state[name] = value
    elif kind == "not-tensor":
        state[name] = data.draw(json_values, label="value")
    elif kind == "evil":
        return Evil()
    else:
        payload["config"] = {**payload["config"], data.draw(st.sampled_from(["attention_dim", "out_dim",
                                                                              "decoder_hidden", "chirality_hidden",
                                                                              "frames", "heads"])):
                             data.draw(st.sampled_from([8, 64, 4096, 2**20, 2**40]), label="size")}
    return payload


@fuzz(40)
@given(data=st.data())
def test_checkpoints(tmp_path_factory, openhand, checkpoint_payload, data):
    from core_model.network.checkpoint import load_checkpoint, read_checkpoint

    path = tmp_path_factory.mktemp("checkpoint") / "c.pt"
    payload = _broken_checkpoint(checkpoint_payload, data)
    how = data.draw(st.sampled_from(["torch", "torch", "torch", "pickle", "damaged"]), label="written as")
    if how == "pickle":
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, path)
        if how == "damaged":
            path.write_bytes(damage_bytes(path.read_bytes(), data))
    assert not Path("pwned").exists()
    try:
        if data.draw(st.integers(0, 3), label="build the model?") == 0:
            load_checkpoint(path, openhand)
        else:
            read_checkpoint(path)
    except ValueError as exc:  # CheckpointMismatchError is one
        assert_clear(exc, path.name)


# ---- InterHand2.6M and HIC ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def interhand_files(tmp_path_factory, openhand) -> dict[str, object]:
    from test_data_interhand import SPLIT, write_interhand_fixture

    root = tmp_path_factory.mktemp("interhand")
    write_interhand_fixture(root, openhand)
    folder = root / "annotations" / SPLIT
    return Quiet({path.name: json.loads(path.read_text()) for path in folder.glob("*.json")})


@fuzz(80)
@given(data=st.data())
def test_interhand_annotations(tmp_path_factory, openhand, interhand_files, data):
    from test_data_interhand import SPLIT

    from core_model.data.annotation_file import AnnotationError
    from core_model.data.interhand import load_interhand_sequences

    root = tmp_path_factory.mktemp("interhand")
    folder = root / "annotations" / SPLIT
    folder.mkdir(parents=True)
    broken = data.draw(st.sampled_from(sorted(interhand_files)), label="file")
    for name, content in interhand_files.items():
        raw = json.dumps(mutate(data, content, data) if name == broken else content).encode()
        if name == broken and data.draw(st.integers(0, 6), label="damage?") == 0:
            raw = damage_bytes(raw, data)
        (folder / name).write_bytes(raw)
    try:
        sequences = load_interhand_sequences(root, SPLIT, openhand)
    except (AnnotationError, FileNotFoundError) as exc:
        assert_clear(exc, broken)
        return
    assert sequences and all(len(s) for s in sequences)


@pytest.fixture(scope="module")
def hic_files(tmp_path_factory, openhand) -> Path:
    from test_data_hic import write_hic_fixture

    root = tmp_path_factory.mktemp("hic")
    write_hic_fixture(root, openhand)
    return root


@fuzz(40)
@given(data=st.data())
def test_hic_annotations(tmp_path_factory, openhand, hic_files, data):
    import shutil

    from core_model.data.annotation_file import AnnotationError
    from core_model.data.hic import load_hic_sequences

    root = tmp_path_factory.mktemp("hic")
    shutil.copytree(hic_files, root, dirs_exist_ok=True)
    index = json.loads((root / "HIC.json").read_text())
    names = ["HIC.json"]
    if data.draw(st.booleans(), label="break a mesh"):
        meshes = sorted(str(p.relative_to(root)) for p in root.glob("01/mano/*.ply"))
        mesh = root / data.draw(st.sampled_from(meshes), label="mesh")
        mesh.write_bytes(damage_bytes(mesh.read_bytes(), data) if data.draw(st.booleans()) else b"ply\n")
        names.append(mesh.name)
    else:
        (root / "HIC.json").write_text(json.dumps(mutate(data, index, data)))
    try:
        sequences = load_hic_sequences(root, openhand)
    except (AnnotationError, FileNotFoundError) as exc:
        assert_clear(exc, *names, ".ply")
        return
    assert sequences and all(len(s) for s in sequences)


# ---- image folders ------------------------------------------------------------------------------------------

def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` and whose data is one tiny compressed row."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
            + chunk(b"IEND", b""))


image_specs = st.lists(st.tuples(
    st.sampled_from(["png", "jpg", "gray16", "rgba", "garbage", "empty", "truncated", "folder", "huge"]),
    st.integers(1, 72), st.integers(1, 72)), min_size=0, max_size=6)


@fuzz(60)
@given(specs=image_specs)
def test_image_folders(tmp_path_factory, specs):
    import cv2

    from core_model.pipeline.video import VideoError, open_source

    folder = tmp_path_factory.mktemp("images")
    for index, (kind, width, height) in enumerate(specs):
        path = folder / f"{index:03d}.{'jpg' if kind == 'jpg' else 'png'}"
        if kind in ("png", "jpg"):
            cv2.imwrite(str(path), np.full((height, width, 3), 40 * index % 255, np.uint8))
        elif kind == "gray16":
            cv2.imwrite(str(path), np.full((height, width), 9000, np.uint16))
        elif kind == "rgba":
            cv2.imwrite(str(path), np.full((height, width, 4), 200, np.uint8))
        elif kind == "garbage":
            path.write_bytes(np.random.default_rng(index).integers(0, 255, 100, np.uint8).tobytes())
        elif kind == "empty":
            path.write_bytes(b"")
        elif kind == "truncated":
            cv2.imwrite(str(path), np.full((height, width, 3), 90, np.uint8))
            path.write_bytes(path.read_bytes()[: max(8, path.stat().st_size // 3)])
        elif kind == "folder":
            path.mkdir()
        else:
            path.write_bytes(png_declaring(100000 + width, 100000 + height))
    try:
        source = open_source(folder)
    except VideoError as exc:
        assert_clear(exc, folder.name)
        return
    with source:
        shape = None
        for _, frame in source:
            assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
            assert shape is None or frame.shape == shape
            shape = frame.shape
        if source.stop_reason is not None:
            assert_clear(VideoError(source.stop_reason), folder.name)


def test_image_declaring_a_huge_size_is_not_decoded(tmp_path):
    """400 megapixels declared (under OpenCV's own gigapixel limit, which would allocate 1.2 GB to decode it): refused
    from the header."""
    from core_model.pipeline.video import VideoError, open_source

    (tmp_path / "0.png").write_bytes(png_declaring(20000, 20000))
    with pytest.raises(VideoError, match=r"0\.png declares 400000000 pixels, more than .* pixels \(not decoded\)"):
        open_source(tmp_path)
