"""interhand export: per-frame meshes and the animated GLB of a sequence (validated with pygltflib)."""

from __future__ import annotations

import numpy as np
import pygltflib
import pytest
import torch
import trimesh

from core_model.cli import main
from core_model.pipeline.sequence_export import export_animation, parse_frames
from core_model.results import Reconstruction, ResultMeta, empty_arrays, save_result


@pytest.fixture(scope="module")
def result_file(tmp_path_factory, openhand):
    n = 6
    arrays = empty_arrays(n, openhand.num_vertices, map_size=4)
    pose = torch.zeros(n, 2, 45)
    pose[:, :, 5] = torch.linspace(0, 1, n)[:, None]
    transl = torch.tensor([[0.0, 0, 0.5], [0.12, 0, 0.5]]).expand(n, 2, 3)
    with torch.no_grad():
        out = openhand(torch.zeros(n, 2, 10), torch.zeros(n, 2, 3), pose, transl)
    arrays["vertices"] = out.vertices.numpy().astype(np.float32)
    arrays["inside"] = np.zeros((n, 2, openhand.num_vertices), bool)
    arrays["inside"][:, 0, :10] = True
    arrays["valid"][:] = True
    arrays["valid"][3, 1] = False  # one frame without the left hand: not exported
    meta = ResultMeta("/clip.mp4", "", 10.0, n, "lite", "", openhand.name)
    path = tmp_path_factory.mktemp("result") / "seq.npz"
    save_result(Reconstruction(meta=meta, **arrays), path)
    return path


def test_parse_frames():
    assert parse_frames(None, 5) == range(5)
    assert list(parse_frames("1:3", 5)) == [1, 2]
    assert list(parse_frames("-2:", 5)) == [3, 4]
    assert list(parse_frames("4", 5)) == [4]
    with pytest.raises(ValueError, match="--frames"):
        parse_frames("7:9", 5)
    with pytest.raises(ValueError, match="--frames"):
        parse_frames("x", 5)


@pytest.mark.parametrize("fmt", ["obj", "ply", "glb"])
def test_cli_export_per_frame(result_file, tmp_path, fmt, capsys):
    assert main(["export", str(result_file), "--format", fmt, "--frames", "2:5", "--out", str(tmp_path)]) == 0
    files = sorted(p.name for p in tmp_path.glob(f"frame_*.{fmt}"))
    assert files == [f"frame_000002.{fmt}", f"frame_000004.{fmt}"]  # frame 3 lacks a hand
    assert "1 frames without both hands skipped" in capsys.readouterr().out
    loaded = trimesh.load(tmp_path / files[0])
    geometries = loaded.geometry.values() if isinstance(loaded, trimesh.Scene) else [loaded]
    assert sum(len(g.vertices) for g in geometries) >= 2 * 1000


def test_animated_glb_is_valid_gltf(result_file, tmp_path, openhand):
    from core_model.results import load_result

    result = load_result(result_file)
    faces = (openhand.right.data.faces, openhand.left.data.faces)
    path = export_animation(result, faces, tmp_path / "anim.glb")
    gltf = pygltflib.GLTF2().load(str(path))
    assert gltf.asset.version == "2.0"
    frames = [0, 1, 2, 4, 5]
    assert len(gltf.meshes) == 2 * len(frames) and len(gltf.nodes) == 1 + 2 * len(frames)
    anim = gltf.animations[0]
    assert len(anim.channels) == 2 * len(frames)
    assert {c.target.path for c in anim.channels} == {"scale"}
    assert {s.interpolation for s in anim.samplers} == {"STEP"}
    blob = gltf.binary_blob()
    assert gltf.buffers[0].byteLength == len(blob)
    for view in gltf.bufferViews:
        assert view.byteOffset % 4 == 0 and view.byteOffset + view.byteLength <= len(blob)
    sizes = {5126: 4, 5125: 4, 5121: 1}
    comps = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}
    for acc in gltf.accessors:
        assert acc.count * sizes[acc.componentType] * comps[acc.type] == gltf.bufferViews[acc.bufferView].byteLength

    def read(index, dtype, width):
        acc = gltf.accessors[index]
        view = gltf.bufferViews[acc.bufferView]
        return np.frombuffer(blob, dtype, acc.count * width, view.byteOffset).reshape(acc.count, width)

    # node of frame 2 (right hand): shown from t=0.2 s to 0.3 s, hidden before and after
    sampler = anim.samplers[anim.channels[4].sampler]
    times, scales = read(sampler.input, np.float32, 1)[:, 0], read(sampler.output, np.float32, 3)[:, 0]
    np.testing.assert_allclose(times, [0.0, 0.2, 0.3], atol=1e-6)
    np.testing.assert_array_equal(scales, [0, 1, 0])
    # frame 4's nodes stay shown one frame and hide at 0.5 s: the gap at frame 3 shows as a gap
    positions = read(gltf.meshes[0].primitives[0].attributes.POSITION, np.float32, 3)
    np.testing.assert_allclose(positions, result.vertices[0, 0], atol=1e-6)
    colours = read(gltf.meshes[0].primitives[0].attributes.COLOR_0, np.uint8, 4)
    assert (colours[:10, 0] > 200).all() and (colours[:10, 1] < 80).all()  # penetrating vertices red
    scene = trimesh.load(path)
    assert len(scene.geometry) == 2 * len(frames)


def test_export_errors(result_file, tmp_path, capsys):
    assert main(["export", str(tmp_path / "absent.npz"), "--out", str(tmp_path)]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["export", str(result_file), "--frames", "50:60", "--out", str(tmp_path)]) == 2
    assert "--frames" in capsys.readouterr().err
