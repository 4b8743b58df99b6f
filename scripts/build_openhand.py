"""Build OpenHand, our redistributable hand model in MANO's data layout, from the MIT-licensed WebXR generic hand.

Source: npm package ``@webxr-input-profiles/assets`` (MIT, (c) 2019 Amazon),
``dist/profiles/generic-hand/right.glb``: a closed 1,159-vertex hand skinned to the 25 WebXR joints.
The left model is the exact mirror of the right (x negated, winding flipped), as MANO's left hand is.

What this script adds to the source mesh, and why:
- MANO's 16-joint tree: WebXR metacarpals of the four fingers are rigid with the wrist (MANO has no metacarpal
  joints); WebXR tip weights go to the distal joint.
- A J_regressor: each joint is a convex combination of the surface vertices around it (non-negative least
  squares), so joints follow shape changes the way MANO's regressed joints do.
- Ten shape components with a meaning, each scaled so that beta = 1 is about one standard deviation of adult
  hand anthropometry (hand length sd ~ 5.5 %, breadth ~ 6 %, finger lengths ~ 5 %).
- No pose-corrective blend shapes (posedirs are zero): OpenHand is plain linear blend skinning.

Run: ``python scripts/build_openhand.py`` (fetches the package with ``npm pack``) or ``--glb right.glb``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pygltflib
import trimesh
from scipy.optimize import nnls

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core_model.handmodel.data import HandModelData, mirror_to_left  # noqa: E402
from core_model.handmodel.keypoints import MANO_JOINT_NAMES  # noqa: E402

NPM_PACKAGE = "@webxr-input-profiles/assets@1.0.20"
GLB_IN_PACKAGE = "package/dist/profiles/generic-hand/right.glb"
FINGERS = ("thumb", "index", "middle", "ring", "pinky")
WEBXR_FINGER = {"thumb": "thumb", "index": "index-finger", "middle": "middle-finger", "ring": "ring-finger",
                "pinky": "pinky-finger"}

SHAPE_COMPONENTS = (
    "overall size (+5.5 % per unit)",
    "palm width (+6 % per unit)",
    "palm length (+6 % per unit)",
    "hand thickness, dorsal-palmar (+8 % per unit)",
    "finger girth (+7 % per unit)",
    "thumb length (+5 % per unit)",
    "index finger length (+5 % per unit)",
    "middle finger length (+5 % per unit)",
    "ring finger length (+5 % per unit)",
    "pinky finger length (+5 % per unit)",
)
SIZE_SD, WIDTH_SD, PALM_LENGTH_SD, THICKNESS_SD, GIRTH_SD, FINGER_LENGTH_SD = 0.055, 0.06, 0.06, 0.08, 0.07, 0.05

LICENCE = """OpenHand hand model (assets/openhand/*.npz) is a derived work of the WebXR generic hand mesh.

Source: @webxr-input-profiles/assets 1.0.20, dist/profiles/generic-hand/right.glb
Built by scripts/build_openhand.py (re-rigged to MANO's 16-joint tree, J_regressor, shape components, mirrored
left hand).

MIT License

Copyright (c) 2019 Amazon

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def fetch_glb(workdir: Path) -> Path:
    subprocess.run(["npm", "pack", NPM_PACKAGE, "--silent"], cwd=workdir, check=True, stdout=subprocess.DEVNULL)
    (tgz,) = workdir.glob("*.tgz")
    with tarfile.open(tgz) as tar:
        tar.extract(GLB_IN_PACKAGE, workdir, filter="data")
    return workdir / GLB_IN_PACKAGE


def read_glb(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Welded vertices, faces, per-vertex weights over the 25 WebXR joints, and joint positions by name."""
    gltf = pygltflib.GLTF2().load(str(path))
    blob = gltf.binary_blob()

    def accessor(index: int) -> np.ndarray:
        acc = gltf.accessors[index]
        view = gltf.bufferViews[acc.bufferView]
        dtype = {5126: np.float32, 5121: np.uint8, 5123: np.uint16, 5125: np.uint32}[acc.componentType]
        width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}[acc.type]
        offset = (view.byteOffset or 0) + (acc.byteOffset or 0)
        return np.frombuffer(blob, dtype=dtype, count=acc.count * width, offset=offset).reshape(acc.count, width)

    prim = gltf.meshes[0].primitives[0]
    positions = accessor(prim.attributes.POSITION).astype(np.float64)
    joint_idx = accessor(prim.attributes.JOINTS_0).astype(np.int64)
    joint_w = accessor(prim.attributes.WEIGHTS_0).astype(np.float64)
    faces = accessor(prim.indices).reshape(-1, 3).astype(np.int64)
    skin = gltf.skins[0]
    names = [gltf.nodes[j].name for j in skin.joints]
    inverse_bind = accessor(skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)  # glTF is column-major
    joints = {name: np.linalg.inv(m)[:3, 3] for name, m in zip(names, inverse_bind)}

    dense = np.zeros((len(positions), len(names)))
    for k in range(4):
        np.add.at(dense, (np.arange(len(positions)), joint_idx[:, k]), joint_w[:, k])
    # glTF splits vertices along UV and normal seams; weld them back into one closed surface.
    _, first, inverse = np.unique(np.round(positions, 6), axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    if np.abs(dense - dense[first][inverse]).max() > 1e-6:
        raise ValueError("seam duplicates carry different skinning weights")
    weights = dense[first]
    weights /= weights.sum(1, keepdims=True)
    return positions[first], inverse[faces], {n: weights[:, i] for i, n in enumerate(names)}, joints


def canonical_frame(joints: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Rotation and origin putting the right hand in MANO's rest frame: fingers -x, palm facing -y, thumb +z,
    with the wrist joint at the origin (so that transl is the wrist position)."""
    wrist = joints["wrist"]
    forward = joints["middle-finger-phalanx-proximal"] - wrist
    forward /= np.linalg.norm(forward)
    thumb_side = joints["index-finger-phalanx-proximal"] - joints["pinky-finger-phalanx-proximal"]
    thumb_side -= forward * (thumb_side @ forward)
    thumb_side /= np.linalg.norm(thumb_side)
    palm = np.cross(thumb_side, forward)  # right hand: fingers x palm = thumb side
    source = np.stack([forward, palm, thumb_side], 1)
    target = np.array([[-1.0, 0, 0], [0, -1, 0], [0, 0, 1]]).T
    return target @ source.T, wrist


def mano_rig(webxr_weights: dict[str, np.ndarray], webxr_joints: dict[str, np.ndarray]):
    """Weights [V, 16] and joint positions [16, 3] on MANO's tree from the WebXR skeleton."""
    num_verts = len(next(iter(webxr_weights.values())))
    weights = np.zeros((num_verts, 16))
    joints = np.zeros((16, 3))
    joints[0] = webxr_joints["wrist"]
    weights[:, 0] += webxr_weights["wrist"]
    for finger in FINGERS:
        prefix = WEBXR_FINGER[finger]
        if finger == "thumb":
            bones = ["metacarpal", "phalanx-proximal", "phalanx-distal"]
        else:
            bones = ["phalanx-proximal", "phalanx-intermediate", "phalanx-distal"]
            weights[:, 0] += webxr_weights[f"{prefix}-metacarpal"]  # MANO's palm is rigid
        for level, bone in enumerate(bones, start=1):
            index = MANO_JOINT_NAMES.index(f"{finger}{level}")
            joints[index] = webxr_joints[f"{prefix}-{bone}"]
            weights[:, index] += webxr_weights[f"{prefix}-{bone}"]
        weights[:, MANO_JOINT_NAMES.index(f"{finger}3")] += webxr_weights[f"{prefix}-tip"]
    return weights, joints


def fingertip_vertices(verts: np.ndarray, weights: np.ndarray, joints: np.ndarray, tips: np.ndarray) -> np.ndarray:
    """The surface vertex of each distal segment furthest along the finger: MANO's fingertip convention."""
    ids = []
    for finger, tip in zip(FINGERS, tips):
        distal = MANO_JOINT_NAMES.index(f"{finger}3")
        axis = tip - joints[distal]
        axis /= np.linalg.norm(axis)
        candidates = np.flatnonzero(weights[:, distal] > 0.5)
        ids.append(candidates[np.argmax((verts[candidates] - joints[distal]) @ axis)])
    return np.array(ids)


def joint_regressor(verts: np.ndarray, joints: np.ndarray, neighbours: int = 24, ridge: float = 1e-4) -> np.ndarray:
    """[16, V] rows of non-negative weights summing to one whose weighted vertex mean is the joint."""
    regressor = np.zeros((len(joints), len(verts)))
    for j, joint in enumerate(joints):
        near = np.argsort(np.linalg.norm(verts - joint, axis=1))[:neighbours]
        scale = np.linalg.norm(verts[near] - joint, axis=1).mean()
        a = np.vstack([verts[near].T / scale, 10.0 * np.ones((1, neighbours)), np.sqrt(ridge) * np.eye(neighbours)])
        b = np.concatenate([joint / scale, [10.0], np.full(neighbours, np.sqrt(ridge) / neighbours)])
        w, _ = nnls(a, b)
        regressor[j, near] = w / w.sum()
    residual = np.linalg.norm(regressor @ verts - joints, axis=1).max()
    if residual > 1e-3:
        raise ValueError(f"J_regressor misses a joint by {residual * 1000:.2f} mm")
    return regressor


def shape_directions(verts: np.ndarray, weights: np.ndarray, joints: np.ndarray, tips: np.ndarray) -> np.ndarray:
    """[V, 3, 10] displacement fields in the canonical right-hand frame (see SHAPE_COMPONENTS)."""
    forward, palm_normal, thumb_side = np.array([-1.0, 0, 0]), np.array([0, -1.0, 0]), np.array([0, 0, 1.0])
    finger_of = {f: [MANO_JOINT_NAMES.index(f"{f}{k}") for k in (1, 2, 3)] for f in FINGERS}
    membership = {f: weights[:, idx].sum(1) for f, idx in finger_of.items()}
    palm_share = weights[:, 0]
    palm_centre = joints[[MANO_JOINT_NAMES.index(f"{f}1") for f in FINGERS[1:]] + [0]].mean(0)

    # Closest point on the skeleton, blended by skinning weight: the axis that thickness and girth scale from.
    children = {0: palm_centre}
    for f, idx in finger_of.items():
        children[idx[0]], children[idx[1]] = joints[idx[1]], joints[idx[2]]
        children[idx[2]] = tips[FINGERS.index(f)]
    axis_point = np.zeros_like(verts)
    for j, end in children.items():
        start = joints[j]
        seg = end - start
        t = np.clip(((verts - start) @ seg) / (seg @ seg), 0.0, 1.0)
        axis_point += weights[:, j : j + 1] * (start + t[:, None] * seg)
    radial = verts - axis_point

    dirs = np.zeros((len(verts), 3, 10))
    dirs[:, :, 0] = SIZE_SD * verts  # the wrist is at the origin
    # Palm width and length move palm vertices proportionally and carry each finger rigidly with its base.
    for column, axis, sd in ((1, thumb_side, WIDTH_SD), (2, forward, PALM_LENGTH_SD)):
        offset = palm_share * ((verts - palm_centre) @ axis if column == 1 else verts @ axis)
        for f, idx in finger_of.items():
            base = joints[idx[0]]
            offset += membership[f] * ((base - palm_centre) @ axis if column == 1 else base @ axis)
        dirs[:, :, column] = sd * offset[:, None] * axis
    dirs[:, :, 3] = THICKNESS_SD * (radial @ palm_normal)[:, None] * palm_normal
    finger_share = 1.0 - palm_share
    dirs[:, :, 4] = GIRTH_SD * finger_share[:, None] * radial
    for column, f in enumerate(FINGERS, start=5):
        base = joints[finger_of[f][0]]
        axis = tips[FINGERS.index(f)] - base
        length = np.linalg.norm(axis)
        axis /= length
        along = np.clip((verts - base) @ axis, 0.0, None)
        dirs[:, :, column] = FINGER_LENGTH_SD * (membership[f] * along)[:, None] * axis
    return dirs


def build(glb: Path) -> HandModelData:
    verts, faces, webxr_weights, webxr_joints = read_glb(glb)
    rotation, origin = canonical_frame(webxr_joints)
    verts = (verts - origin) @ rotation.T
    webxr_joints = {k: (v - origin) @ rotation.T for k, v in webxr_joints.items()}
    weights, joints = mano_rig(webxr_weights, webxr_joints)
    tips = np.stack([webxr_joints[f"{WEBXR_FINGER[f]}-tip"] for f in FINGERS])
    mesh = trimesh.Trimesh(verts, faces, process=False)
    if not (mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0):
        raise ValueError("the welded source mesh is not a closed, outward-facing surface")
    tip_ids = fingertip_vertices(verts, weights, joints, tips)
    meta = {
        "name": "OpenHand",
        "licence": "MIT (derived from the WebXR generic hand, (c) 2019 Amazon); see assets/openhand/LICENSE.txt",
        "source": f"{NPM_PACKAGE}:{GLB_IN_PACKAGE.removeprefix('package/')}",
        "shape_components": list(SHAPE_COMPONENTS),
        "pose_correctives": False,
    }
    return HandModelData(
        side="right",
        v_template=verts.astype(np.float32),
        shapedirs=shape_directions(verts, weights, joints, verts[tip_ids]).astype(np.float32),
        posedirs=np.zeros((len(verts), 3, 135), np.float32),
        J_regressor=joint_regressor(verts, joints).astype(np.float32),
        weights=weights.astype(np.float32),
        kintree_table=HandModelData.mano_kintree(),
        faces=faces.astype(np.int32),
        closed_faces=faces.astype(np.int32),  # the source surface is already closed at the wrist
        hands_components=np.eye(45, dtype=np.float32),
        hands_mean=np.zeros(45, np.float32),
        fingertip_ids=tip_ids.astype(np.int64),
        meta=meta,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--glb", type=Path, help="right.glb of the WebXR generic hand (default: npm pack it)")
    parser.add_argument("--out", type=Path, default=REPO / "assets" / "openhand")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        right = build(args.glb or fetch_glb(Path(tmp)))
    args.out.mkdir(parents=True, exist_ok=True)
    for model in (right, mirror_to_left(right)):
        model.save(args.out / f"OPENHAND_{model.side.upper()}.npz")
    (args.out / "LICENSE.txt").write_text(LICENCE)
    print(json.dumps({"vertices": len(right.v_template), "faces": len(right.faces),
                      "fingertip_ids": right.fingertip_ids.tolist()}))


if __name__ == "__main__":
    main()
