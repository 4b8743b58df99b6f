"""InterHand2.6M loader on a small fixture written here in the dataset's real formats (never real files)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.spatial.transform import Rotation

from core_model.data.annotation_file import read_json
from core_model.data.camera import project
from core_model.data.interhand import InterHandWindows, _mano_params, load_interhand_sequences
from core_model.data.windows import Window
from core_model.handmodel.keypoints import INTERHAND_TO_OURS, ours_to_interhand

SPLIT, CAPTURE, SEQ, CAMERA = "test", 2, "0051_dinosaur", "400262"
FRAMES = [10, 11, 12, 13, 15, 16, 17, 18]  # frame 14 is missing: two runs
INVALID = (12, "right", 4)  # frame, hand, our keypoint index stored as [1, 1, 1]
WIDTH, HEIGHT = 64, 96


def _world_hands(openhand, frame: int) -> tuple[np.ndarray, dict]:
    """Posed OpenHand keypoints [2, 21, 3] in a world frame (metres) and their parameters."""
    rng = np.random.default_rng(frame)
    params = {"betas": torch.zeros(2, 10), "hand_pose": torch.from_numpy(rng.normal(0, 0.1, (2, 45))).float(),
              "global_orient": torch.from_numpy(rng.normal(0, 0.3, (2, 3))).float(),
              "transl": torch.tensor([[0.02 + 0.001 * frame, 0.1, 0.9], [0.12, 0.11, 0.92]])}
    with torch.no_grad():
        out = openhand(params["betas"], params["global_orient"], params["hand_pose"], params["transl"])
    return out.keypoints.numpy().astype(np.float64), {k: v.numpy() for k, v in params.items()}


def _camera():
    R = Rotation.from_euler("xyz", [10, -20, 5], degrees=True).as_matrix()
    # A world frame in which the hands (about 0.9 m ahead of the origin) are seen from a camera 0.5 m back.
    campos_mm = np.array([0.05, 0.1, 0.3]) * 1000
    return R, campos_mm


def write_interhand_fixture(root, openhand) -> dict:
    R, campos_mm = _camera()
    K = np.array([[120.0, 0, 31.5], [0, 118.0, 47.5], [0, 0, 1]])
    images, annotations, joints, mano = [], [], {}, {}
    truth = {}
    for i, frame in enumerate(FRAMES):
        world_m, params = _world_hands(openhand, frame)
        # Place the world so that the camera sees the hands: world = R^T cam + campos.
        cam_m = world_m - world_m.reshape(-1, 3).mean(0) + np.array([0.0, 0.0, 0.45])
        world = cam_m @ R + campos_mm / 1000
        per_hand = np.stack([ours_to_interhand(world[h], axis=0) for h in range(2)])  # InterHand order
        world_coord = per_hand.reshape(42, 3) * 1000  # mm
        valid = np.ones(42)
        if frame == INVALID[0]:
            hand = 0 if INVALID[1] == "right" else 1
            j = hand * 21 + INTERHAND_TO_OURS[INVALID[2]]  # where InterHand stores our keypoint
            world_coord[j] = 1.0
            valid[j] = 0
        truth[frame] = cam_m
        uv = project(cam_m.reshape(-1, 3), K)
        x0, y0 = uv.min(0) - 2
        x1, y1 = uv.max(0) + 2
        file_name = f"Capture{CAPTURE}/{SEQ}/cam{CAMERA}/image{frame:05d}.jpg"
        path = root / "images" / SPLIT / file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((HEIGHT, WIDTH, 3), 90 + i, np.uint8)).save(path)
        images.append({"id": i, "file_name": file_name, "width": WIDTH, "height": HEIGHT, "capture": CAPTURE,
                       "subject": 1, "seq_name": SEQ, "camera": CAMERA, "frame_idx": frame})
        annotations.append({"id": i, "image_id": i, "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                            "joint_valid": [[v] for v in valid], "hand_type": "interacting", "hand_type_valid": 1})
        joints[str(frame)] = {"world_coord": world_coord.tolist(), "joint_valid": valid.tolist(),
                              "hand_type": "interacting", "hand_type_valid": True}
        pose = [np.concatenate([params["global_orient"][h], params["hand_pose"][h]]).tolist() for h in range(2)]
        mano[str(frame)] = {side: {"pose": pose[h],
                                   "shape": params["betas"][h].tolist(), "trans": params["transl"][h].tolist()}
                            for h, side in enumerate(("right", "left"))}
    # One frame of another hand type, which the interacting subset leaves out.
    images.append({**images[0], "id": 99, "frame_idx": 30, "file_name": images[0]["file_name"]})
    annotations.append({**annotations[0], "id": 99, "image_id": 99, "hand_type": "right"})
    cam = {"campos": {CAMERA: campos_mm.tolist()}, "camrot": {CAMERA: R.tolist()},
           "focal": {CAMERA: [K[0, 0], K[1, 1]]}, "princpt": {CAMERA: [K[0, 2], K[1, 2]]}}
    ann_dir = root / "annotations" / SPLIT
    ann_dir.mkdir(parents=True)
    files = {"data": {"images": images, "annotations": annotations}, "camera": {str(CAPTURE): cam},
             "joint_3d": {str(CAPTURE): joints}, "MANO_NeuralAnnot": {str(CAPTURE): mano}}
    for kind, content in files.items():
        (ann_dir / f"InterHand2.6M_{SPLIT}_{kind}.json").write_text(json.dumps(content))
    return {"truth": truth, "K": K, "R": R, "campos": campos_mm / 1000}


@pytest.fixture(scope="module")
def fixture(tmp_path_factory, openhand):
    root = tmp_path_factory.mktemp("interhand")
    return root, write_interhand_fixture(root, openhand)


def test_sequences_split_at_missing_frames_and_joints_in_camera_metres(fixture, openhand):
    root, info = fixture
    seqs = load_interhand_sequences(root, SPLIT, openhand)
    assert [len(s) for s in seqs] == [4, 4]  # frames 10-13 and 15-18; the 'right' frame is not interacting
    assert seqs[0].image_paths[0].name == "image00010.jpg" and seqs[1].image_paths[0].name == "image00015.jpg"
    for seq, frames in zip(seqs, (FRAMES[:4], FRAMES[4:])):
        for t, frame in enumerate(frames):
            truth = info["truth"][frame]
            ok = seq.joint_valid[t]
            np.testing.assert_allclose(seq.keypoints3d[t][ok], truth[ok], atol=1e-6)  # mm -> m, our order
    # Joint order: our wrist (0) is InterHand's last joint of each hand; the thumb tip (4) its first.
    np.testing.assert_allclose(seqs[1].keypoints3d[0, :, 0], info["truth"][15][:, 0], atol=1e-6)
    np.testing.assert_allclose(seqs[1].keypoints3d[0, :, 4], info["truth"][15][:, 4], atol=1e-6)


def test_invalid_joint_and_boxes(fixture, openhand):
    root, _ = fixture
    seqs = load_interhand_sequences(root, SPLIT, openhand)
    t = FRAMES.index(INVALID[0])
    valid = seqs[0].joint_valid[t]
    assert not valid[0, INVALID[2]] and valid.sum() == 41
    assert seqs[0].hand_valid.all()
    for seq in seqs:
        uv = project(seq.keypoints3d, seq.K[:, None, None])
        lo, hi = seq.boxes[:, :1, None, :2], seq.boxes[:, :1, None, 2:]
        inside = (uv >= lo) & (uv <= hi)
        assert inside.all(-1)[seq.joint_valid].all()


def test_windows_from_interhand(fixture, openhand):
    root, _ = fixture
    data = InterHandWindows(root, SPLIT, openhand, window=3, stride=1, crop_size=32)
    assert len(data) == 4
    w = Window.from_dict(data[0])
    assert w.images.shape == (3, 3, 32, 32)
    # OpenHand is in use: MANO parameters are not valid for it, joints are.
    assert not w.params_valid.any() and not w.vertices_valid.any() and w.joint_valid.sum() == 3 * 42 - 1
    kp = w.keypoints2d[w.joint_valid].numpy()
    assert (kp > 0).all() and (kp < 32).all()
    long = InterHandWindows(root, SPLIT, openhand, window=6, crop_size=32)
    w = Window.from_dict(long[0])
    assert w.labelled.tolist() == [True] * 4 + [False] * 2


def test_mano_parameters_go_to_the_camera_frame(fixture, openhand):
    """The world -> camera conversion of NeuralAnnot parameters, checked with OpenHand standing in for MANO (its
    mean pose is zero): the converted parameters pose the hands where the camera sees them."""
    root, info = fixture
    R, campos = info["R"], info["campos"]
    data = read_json(root / "annotations" / SPLIT / f"InterHand2.6M_{SPLIT}_data.json")
    mano_file = read_json(root / "annotations" / SPLIT / f"InterHand2.6M_{SPLIT}_MANO_NeuralAnnot.json")
    items = [(im, None) for im in data["images"].list()[:2]]
    params, valid = _mano_params(items, mano_file[str(CAPTURE)], R, campos, openhand)
    mano = mano_file.value
    assert valid.all()
    entry = mano[str(CAPTURE)][str(FRAMES[0])]
    world = {k: [] for k in ("betas", "global_orient", "hand_pose", "transl")}
    for side in ("right", "left"):
        world["global_orient"].append(entry[side]["pose"][:3])
        world["hand_pose"].append(entry[side]["pose"][3:])
        world["betas"].append(entry[side]["shape"])
        world["transl"].append(entry[side]["trans"])
    with torch.no_grad():
        w_out = openhand(*(torch.tensor(world[k]) for k in ("betas", "global_orient", "hand_pose", "transl")))
        c_out = openhand(*(torch.from_numpy(params[k][0]) for k in ("betas", "global_orient", "hand_pose", "transl")))
    expected = (w_out.vertices.numpy().astype(np.float64) - campos) @ R.T
    np.testing.assert_allclose(c_out.vertices.numpy(), expected, atol=1e-5)


def test_missing_files_are_named(tmp_path, openhand):
    with pytest.raises(FileNotFoundError, match=r"InterHand2\.6M_train_data\.json"):
        load_interhand_sequences(tmp_path, "train", openhand)
    with pytest.raises(ValueError, match="hand_types"):
        load_interhand_sequences(tmp_path, "train", openhand, hand_types=("both",))
