"""T-frame windows of annotated sequences, cropped and augmented, as a torch Dataset a trainer can consume.

Every loader (synthetic, InterHand2.6M, HIC) turns its files into :class:`SequenceAnnotations` (per-frame arrays
in the camera frame, metres); :class:`WindowDataset` cuts them into windows of ``window`` frames and returns,
per window, a plain dict of tensors whose keys and shapes are the fields of :class:`Window` (dicts go through
``torch.utils.data.default_collate``; :func:`collate_windows` gives a batched :class:`Window` instead).

Crops follow the paper: each frame is cut around both hands (the square around their 2D keypoints or boxes,
enlarged by ``margin``) and resized to ``crop_size``. Augmentation (:class:`Augmentation`), drawn once per window
so motion stays coherent: scale, in-plane rotation (image and 3D turned together about the optical axis), shift,
colour, and a horizontal flip that mirrors the image and 3D (x -> -x), swaps hand 0 and 1, and mirrors MANO-layout
parameters (axis-angle (x, y, z) -> (x, -y, -z), translation x -> -x; exact for mirror-image hand models).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.spatial.transform import Rotation

from core_model.data.camera import crop_affine, project, rotation_z, square_box
from core_model.data.detector_sim import DetectorErrors, simulate_detections
from core_model.network.landmarks import pixels_to_input

MIRROR = np.diag([-1.0, 1.0, 1.0])
AXIS_ANGLE_MIRROR = np.array([1.0, -1.0, -1.0])


@dataclasses.dataclass
class SequenceAnnotations:
    """One video sequence of N frames, all in its camera frame (metres), hand axis 0 = right, 1 = left.

    image_paths: N image files (RGB); K [N, 3, 3] intrinsics; image_size (width, height);
    keypoints3d [N, 2, 21, 3] our keypoint order; joint_valid [N, 2, 21] bool; hand_valid [N, 2] bool;
    labelled [N] bool (frame has ground truth at all); boxes [N, 2, 4] or None (x0, y0, x1, y1 pixels per hand,
    used for the crop where the keypoints are missing); params: betas [N,2,10], global_orient [N,2,3],
    hand_pose [N,2,45] (full articulation: MANO's mean already added), transl [N,2,3], or None;
    params_valid [N, 2] bool (valid for the hand model the dataset was built with); vertices: a function of frame
    indices returning [n, 2, V, 3] for that model, or None; vertices_valid [N, 2] bool; visible [N, 2, 21] bool
    (the keypoint is seen in the image, not occluded; None: every valid keypoint counts as seen), for the
    simulated detector.
    """

    name: str
    image_paths: list[Path]
    K: np.ndarray
    image_size: tuple[int, int]
    keypoints3d: np.ndarray
    joint_valid: np.ndarray
    hand_valid: np.ndarray
    labelled: np.ndarray
    boxes: np.ndarray | None = None
    params: dict[str, np.ndarray] | None = None
    params_valid: np.ndarray | None = None
    vertices: Callable[[np.ndarray], np.ndarray] | None = None
    vertices_valid: np.ndarray | None = None
    visible: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.image_paths)
        expect = {"K": (n, 3, 3), "keypoints3d": (n, 2, 21, 3), "joint_valid": (n, 2, 21), "hand_valid": (n, 2),
                  "labelled": (n,)}
        for key, shape in expect.items():
            if getattr(self, key).shape != shape:
                raise ValueError(f"{key}: expected shape {shape}, got {getattr(self, key).shape} ({self.name})")
        if self.boxes is not None and self.boxes.shape != (n, 2, 4):
            raise ValueError(f"boxes: expected shape {(n, 2, 4)}, got {self.boxes.shape} ({self.name})")
        if self.visible is not None and self.visible.shape != (n, 2, 21):
            raise ValueError(f"visible: expected shape {(n, 2, 21)}, got {self.visible.shape} ({self.name})")

    def __len__(self) -> int:
        return len(self.image_paths)


@dataclasses.dataclass
class Window:
    """One window of T frames (a batch adds a leading B). Images are RGB in [0, 1], not normalised (the STCNet
    encoders normalise inside). Camera frame, metres; hand axis 0 = right, 1 = left; S = crop size.

    images [T, 3, S, S] float32; keypoints3d [T, 2, 21, 3]; keypoints2d [T, 2, 21, 2] crop pixels
    (= keypoints3d projected by K_crop); joint_valid [T, 2, 21] bool; hand_valid [T, 2] bool;
    labelled [T] bool (False: no ground truth, or a padded frame); betas [T, 2, 10]; global_orient [T, 2, 3];
    hand_pose [T, 2, 45]; transl [T, 2, 3] (MANO-layout, camera frame); params_valid [T, 2] bool (valid for the
    hand model in use; zeros where False); vertices [T, 2, V, 3] (V of the hand model in use, zeros where
    invalid); vertices_valid [T, 2] bool; root_rel [T, 3] left wrist minus right wrist (the relative right-to-left
    root translation); root_rel_valid [T] bool; crop_box [T, 4] the un-rotated crop square in original pixels
    (x0, y0, x1, y1); crop_affine [T, 3, 3] original pixels -> crop pixels; K [T, 3, 3] original intrinsics;
    K_crop [T, 3, 3] crop intrinsics; image_size [2] original (width, height); flipped [] bool; frame_index [T]
    index in the sequence (-1 for padding); sequence [] index into ``WindowDataset.sequences``;
    landmarks [T, 2, 21, 3] a simulated 2D detector's landmarks in the model's input format
    (:mod:`core_model.network.landmarks`: normalised crop coordinates and presence).
    """

    images: torch.Tensor
    keypoints3d: torch.Tensor
    keypoints2d: torch.Tensor
    joint_valid: torch.Tensor
    hand_valid: torch.Tensor
    labelled: torch.Tensor
    betas: torch.Tensor
    global_orient: torch.Tensor
    hand_pose: torch.Tensor
    transl: torch.Tensor
    params_valid: torch.Tensor
    vertices: torch.Tensor
    vertices_valid: torch.Tensor
    root_rel: torch.Tensor
    root_rel_valid: torch.Tensor
    crop_box: torch.Tensor
    crop_affine: torch.Tensor
    K: torch.Tensor
    K_crop: torch.Tensor
    image_size: torch.Tensor
    flipped: torch.Tensor
    frame_index: torch.Tensor
    sequence: torch.Tensor
    landmarks: torch.Tensor

    def to_dict(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, torch.Tensor]) -> Window:
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in data]
        if missing:
            raise ValueError(f"data: missing window fields {missing}")
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})

    def to(self, device: torch.device | str) -> Window:
        return Window(**{k: v.to(device) for k, v in self.to_dict().items()})


def collate_windows(items: Sequence[dict[str, torch.Tensor]]) -> Window:
    """Stack window dicts into a batched :class:`Window` (leading dimension B); use as a DataLoader collate_fn."""
    return Window.from_dict(torch.utils.data.default_collate(list(items)))


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Training augmentation ranges, drawn once per window. scale: crop side multiplier range; rotation_deg:
    standard deviation of the in-plane rotation (clipped at 2 sigma), applied with ``rotation_prob``; shift:
    crop centre shift as a fraction of the side; brightness/contrast/saturation: multiplier ranges; hue: max shift
    in RGB-rotation degrees; flip_prob: probability of the mirror with hands swapped."""

    scale: tuple[float, float] = (0.85, 1.25)
    rotation_deg: float = 30.0
    rotation_prob: float = 0.6
    shift: float = 0.08
    brightness: tuple[float, float] = (0.7, 1.3)
    contrast: tuple[float, float] = (0.7, 1.3)
    saturation: tuple[float, float] = (0.6, 1.4)
    hue_deg: float = 12.0
    flip_prob: float = 0.5

    def sample(self, rng: np.random.Generator) -> AugmentParams:
        rot = 0.0
        if rng.uniform() < self.rotation_prob:
            rot = float(np.clip(rng.normal(0, self.rotation_deg), -2 * self.rotation_deg, 2 * self.rotation_deg))
        return AugmentParams(scale=float(rng.uniform(*self.scale)), rotation_deg=rot,
                             shift=rng.uniform(-self.shift, self.shift, 2),
                             brightness=float(rng.uniform(*self.brightness)),
                             contrast=float(rng.uniform(*self.contrast)),
                             saturation=float(rng.uniform(*self.saturation)),
                             hue_deg=float(rng.uniform(-self.hue_deg, self.hue_deg)),
                             flip=bool(rng.uniform() < self.flip_prob))


@dataclasses.dataclass
class AugmentParams:
    """One draw of :class:`Augmentation` (identity by default)."""

    scale: float = 1.0
    rotation_deg: float = 0.0
    shift: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(2))
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    hue_deg: float = 0.0
    flip: bool = False


def _load_image(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def warp_images(images: np.ndarray, affines: np.ndarray, out_size: int) -> torch.Tensor:
    """images [T, H, W, 3] uint8, affines [T, 3, 3] original -> crop pixels: [T, 3, S, S] float in [0, 1], bilinear,
    zero outside the image."""
    t, h, w, _ = images.shape
    src = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    inv = torch.from_numpy(np.linalg.inv(affines)).float()  # crop -> original
    q = torch.arange(out_size, dtype=torch.float32)
    yy, xx = torch.meshgrid(q, q, indexing="ij")
    grid = torch.stack([xx, yy, torch.ones_like(xx)], -1).reshape(1, -1, 3)
    p = grid @ inv.transpose(1, 2)  # [T, S*S, 3]
    gx = 2 * p[..., 0] / max(w - 1, 1) - 1
    gy = 2 * p[..., 1] / max(h - 1, 1) - 1
    sample = torch.stack([gx, gy], -1).reshape(t, out_size, out_size, 2)
    return torch.nn.functional.grid_sample(src, sample, mode="bilinear", padding_mode="zeros", align_corners=True)


def colour_jitter(images: torch.Tensor, aug: AugmentParams) -> torch.Tensor:
    """Brightness, contrast, saturation and hue (a rotation about the grey axis) on [T, 3, S, S] in [0, 1]."""
    out = images * aug.brightness
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * aug.contrast + mean
    grey = out.mean(dim=1, keepdim=True)
    out = (out - grey) * aug.saturation + grey
    if aug.hue_deg:
        axis = np.ones(3) / np.sqrt(3)
        rot = torch.from_numpy(Rotation.from_rotvec(axis * np.deg2rad(aug.hue_deg)).as_matrix()).float()
        out = torch.einsum("ij,tjhw->tihw", rot, out)
    return out.clamp(0, 1)


def _root_joints(model, betas: np.ndarray) -> np.ndarray:
    """[..., 2, 3] rest root joint of each hand for betas [..., 2, 10] (the model rotates about it)."""
    out = np.zeros(betas.shape[:-1] + (3,))
    for h, layer in enumerate(model.sides):
        template = layer.v_template.double().numpy()
        shapedirs = layer.shapedirs.double().numpy()
        regressor = layer.J_regressor[0].double().numpy()
        shaped = template[None] + np.einsum("vck,nk->nvc", shapedirs, betas[..., h, :].reshape(-1, 10))
        out[..., h, :] = np.einsum("v,nvc->nc", regressor, shaped).reshape(betas.shape[:-2] + (3,))
    return out


def rotate_params(params: dict[str, np.ndarray], rot: np.ndarray, roots: np.ndarray) -> dict[str, np.ndarray]:
    """MANO-layout parameters of hands turned rigidly by ``rot`` [3, 3] about the camera origin.

    The model poses as ``X = R (v - J0) + J0 + transl``, so turning X by Q gives ``R' = Q R`` and
    ``transl' = Q (J0 + transl) - J0`` with J0 the rest root joint (``roots`` [..., 2, 3])."""
    orient = Rotation.from_rotvec(params["global_orient"].reshape(-1, 3).astype(np.float64))
    new_orient = (Rotation.from_matrix(rot) * orient).as_rotvec().reshape(params["global_orient"].shape)
    transl = (roots + params["transl"]) @ rot.T - roots
    return {**params, "global_orient": new_orient.astype(np.float32), "transl": transl.astype(np.float32)}


def mirror_params(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Mirror (x -> -x) and swap hands: axis-angle (x, y, z) -> (x, -y, -z), transl x -> -x."""
    out = dict(params)
    out["global_orient"] = (params["global_orient"] * AXIS_ANGLE_MIRROR)[..., ::-1, :]
    out["hand_pose"] = (params["hand_pose"].reshape(*params["hand_pose"].shape[:-1], 15, 3)
                        * AXIS_ANGLE_MIRROR).reshape(params["hand_pose"].shape)[..., ::-1, :]
    out["transl"] = (params["transl"] * np.array([-1.0, 1.0, 1.0]))[..., ::-1, :]
    out["betas"] = params["betas"][..., ::-1, :]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def _fill_missing(values: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Replace rows where ``ok`` is False by the nearest valid row (values [T, ...]); all-invalid stays."""
    if ok.all() or not ok.any():
        return values
    idx = np.arange(len(ok))
    good = idx[ok]
    nearest = good[np.abs(idx[:, None] - good[None]).argmin(1)]
    return values[nearest]


def item_seed_from_torch() -> int:
    """An item's seed for its random draws, from torch's generator: it follows ``torch.manual_seed`` and the
    loader's per-worker seeding (and so :class:`~core_model.training.datasets.SeededWindows`)."""
    return int(torch.randint(0, 2 ** 62, ()).item())


def detector_rng_of(seed: int) -> np.random.Generator:
    """The simulated detector's generator for an item seeded ``seed`` (a stream apart from its augmentation's)."""
    return np.random.default_rng([seed, 1])


class WindowDataset(torch.utils.data.Dataset):
    """Windows of ``window`` frames over ``sequences``, every ``stride`` frames (default: ``window``).

    A sequence shorter than ``window`` gives one window padded with its last frame (``labelled`` False, frame
    index -1 on the padding) when ``pad_short``, else none. ``hand_model`` is the model in use: parameters are
    reported valid only where the sequence's are valid for it, and vertices have its vertex count.
    ``augmentation`` None gives centred, unaugmented crops (evaluation). ``margin``: crop side over the hands'
    extent. ``detector``: the error rates of the simulated 2D detector whose landmarks fill ``landmarks`` (None:
    the defaults of :class:`DetectorErrors`), drawn afresh with each augmentation and fixed per window without
    augmentation, so evaluation is repeatable. Each item is a dict with the fields of :class:`Window`.
    """

    def __init__(self, sequences: Sequence[SequenceAnnotations], hand_model, window: int = 10,
                 stride: int | None = None, crop_size: int = 256, augmentation: Augmentation | None = None,
                 margin: float = 1.3, pad_short: bool = True, detector: DetectorErrors | None = None) -> None:
        if window < 1:
            raise ValueError(f"window: expected at least 1 frame, got {window}")
        if stride is not None and stride < 1:
            raise ValueError(f"stride: expected at least 1 frame, got {stride}")
        if crop_size < 8:
            raise ValueError(f"crop_size: expected at least 8 pixels, got {crop_size}")
        if margin <= 0:
            raise ValueError(f"margin: expected a positive factor, got {margin}")
        self.sequences = list(sequences)
        self.model = hand_model
        self.window = window
        self.stride = stride or window
        self.crop_size = crop_size
        self.augmentation = augmentation
        self.margin = margin
        self.detector = detector or DetectorErrors()
        self.index: list[tuple[int, int]] = []
        for s, seq in enumerate(self.sequences):
            n = len(seq)
            if n >= window:
                starts = list(range(0, n - window + 1, self.stride))
                if starts[-1] != n - window:
                    starts.append(n - window)  # cover the tail
                self.index += [(s, st) for st in starts]
            elif n > 0 and pad_short:
                self.index.append((s, 0))

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        if not 0 <= item < len(self.index):
            raise IndexError(f"item: {item} outside [0, {len(self.index)})")
        s, start = self.index[item]
        aug, detector_rng = AugmentParams(), None
        if self.augmentation is not None:
            seed = item_seed_from_torch()
            aug = self.augmentation.sample(np.random.default_rng(seed))
            detector_rng = detector_rng_of(seed)
        return self.build(s, start, aug, detector_rng).to_dict()

    def build(self, s: int, start: int, aug: AugmentParams, detector_rng: np.random.Generator | None = None,
              load_images: bool = True, length: int | None = None) -> Window:
        """The window of sequence ``s`` starting at frame ``start`` under augmentation ``aug``; the simulated
        detector draws from ``detector_rng`` (None: a generator fixed by ``s`` and ``start``). ``load_images``
        False leaves the frames unread and ``images`` a zero placeholder of their shape (training from cached
        encoder features, :mod:`core_model.training.feature_cache`). ``length``: frames instead of the dataset's
        window (evaluation reads whole sequences in pieces of its own size)."""
        # Long by design (about 80 lines): one chain of transforms (crop, warp, 3D turn, mirror, project, simulate
        # the detector) that must see the images, keypoints, parameters and vertices in the same order; split up,
        # the order the augmentation's consistency depends on would be spread over several functions.
        seq = self.sequences[s]
        n, T, S = len(seq), self.window if length is None else length, self.crop_size
        if T < 1:
            raise ValueError(f"length: expected at least 1 frame, got {T}")
        frames = np.arange(start, start + T)
        real = frames < n
        idx = np.minimum(frames, n - 1)

        K = seq.K[idx].astype(np.float64)
        kp3d = seq.keypoints3d[idx].astype(np.float64)
        joint_valid = seq.joint_valid[idx] & real[:, None, None]
        visible = joint_valid if seq.visible is None else joint_valid & seq.visible[idx]
        hand_valid = seq.hand_valid[idx] & real[:, None]
        labelled = seq.labelled[idx] & real

        centres, sides = self._crop_squares(seq, idx, project(kp3d, K[:, None, None]), joint_valid)
        sides = sides * aug.scale
        centres = centres + aug.shift[None] * sides[:, None]
        angle = np.deg2rad(aug.rotation_deg)
        affines = np.stack([crop_affine(c, side, S, angle) for c, side in zip(centres, sides)])
        rot = rotation_z(angle)
        crop_box = np.concatenate([centres - sides[:, None] / 2, centres + sides[:, None] / 2], 1)

        if load_images:
            images = warp_images(np.stack([_load_image(seq.image_paths[i]) for i in idx]), affines, S)
            images = colour_jitter(images, aug)
        else:
            images = torch.zeros(()).expand(T, 3, S, S)

        # 3D turns with the image about the optical axis; the crop camera maps it to the crop exactly.
        kp3d = kp3d @ rot.T
        K_crop = affines @ K @ rot.T
        params, params_valid = self._params(seq, idx, real, rot)
        vertices, vertices_valid = self._vertices(seq, idx, real, rot)

        flipped = aug.flip
        if flipped:
            images = images.flip(-1) if load_images else images
            flip = np.array([[-1.0, 0, S - 1], [0, 1, 0], [0, 0, 1]])
            K_crop = flip @ K_crop @ MIRROR
            kp3d = (kp3d @ MIRROR)[:, ::-1]
            vertices = (vertices @ MIRROR)[:, ::-1]
            joint_valid, hand_valid, visible = joint_valid[:, ::-1], hand_valid[:, ::-1], visible[:, ::-1]
            params_valid, vertices_valid = params_valid[:, ::-1], vertices_valid[:, ::-1]
            params = mirror_params(params)
            affines = flip @ affines

        kp2d = project(kp3d, K_crop[:, None, None])
        detector_rng = np.random.default_rng([s, start]) if detector_rng is None else detector_rng
        detected, _ = simulate_detections(kp2d, visible, np.full(T, float(S)), detector_rng, self.detector,
                                          valid=joint_valid & hand_valid[..., None])
        kp3d = np.where(joint_valid[..., None], kp3d, 0.0)
        kp2d = np.where(joint_valid[..., None], kp2d, 0.0)
        for key in params:
            params[key] = np.where(params_valid[..., None], params[key], 0.0)
        root_rel_valid = joint_valid[:, 0, 0] & joint_valid[:, 1, 0]
        root_rel = np.where(root_rel_valid[:, None], kp3d[:, 1, 0] - kp3d[:, 0, 0], 0.0)

        def f32(a) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

        def b(a) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a, dtype=bool))

        return Window(
            images=images.contiguous() if load_images else images, keypoints3d=f32(kp3d), keypoints2d=f32(kp2d),
            joint_valid=b(joint_valid),
            hand_valid=b(hand_valid), labelled=b(labelled), betas=f32(params["betas"]),
            global_orient=f32(params["global_orient"]), hand_pose=f32(params["hand_pose"]),
            transl=f32(params["transl"]), params_valid=b(params_valid), vertices=f32(vertices),
            vertices_valid=b(vertices_valid), root_rel=f32(root_rel), root_rel_valid=b(root_rel_valid),
            crop_box=f32(crop_box), crop_affine=f32(affines), K=f32(K), K_crop=f32(K_crop),
            image_size=torch.tensor(seq.image_size, dtype=torch.int64), flipped=torch.tensor(flipped),
            frame_index=torch.from_numpy(np.where(real, frames, -1).astype(np.int64)),
            sequence=torch.tensor(s, dtype=torch.int64),
            landmarks=pixels_to_input(torch.from_numpy(detected), S))

    def _crop_squares(self, seq: SequenceAnnotations, idx: np.ndarray, kp2d: np.ndarray, joint_valid: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Each frame's crop square (centre [T, 2], side [T] pixels) around its valid keypoints, or the boxes of
        hands without any; frames with neither take their neighbours' (the whole image when no frame has any)."""
        T = len(idx)
        centres, sides, has_box = np.zeros((T, 2)), np.zeros(T), np.zeros(T, bool)
        for t in range(T):
            pts = [kp2d[t][joint_valid[t]]]
            if seq.boxes is not None:
                for h in range(2):
                    if not joint_valid[t, h].any() and np.all(np.isfinite(seq.boxes[idx[t], h])) \
                            and seq.boxes[idx[t], h, 2] > seq.boxes[idx[t], h, 0]:
                        pts.append(seq.boxes[idx[t], h].reshape(2, 2))
            pts = np.concatenate(pts)
            if len(pts):
                centres[t], sides[t] = square_box(pts, self.margin)
                sides[t] = max(sides[t], 8.0)
                has_box[t] = True
        if not has_box.any():
            width, height = seq.image_size
            centres[:] = ((width - 1) / 2, (height - 1) / 2)
            sides[:] = min(width, height)
            return centres, sides
        return _fill_missing(centres, has_box), _fill_missing(sides, has_box)

    def _params(self, seq: SequenceAnnotations, idx: np.ndarray, real: np.ndarray, rot: np.ndarray):
        T = len(idx)
        zeros = {"betas": np.zeros((T, 2, 10), np.float32), "global_orient": np.zeros((T, 2, 3), np.float32),
                 "hand_pose": np.zeros((T, 2, 45), np.float32), "transl": np.zeros((T, 2, 3), np.float32)}
        if seq.params is None or seq.params_valid is None:
            return zeros, np.zeros((T, 2), bool)
        valid = seq.params_valid[idx] & real[:, None]
        if not valid.any():
            return zeros, valid
        params = {k: seq.params[k][idx].astype(np.float64) for k in zeros}
        if not np.allclose(rot, np.eye(3)):
            params = rotate_params(params, rot, _root_joints(self.model, params["betas"]))
        return {k: v.astype(np.float32) for k, v in params.items()}, valid

    def _vertices(self, seq: SequenceAnnotations, idx: np.ndarray, real: np.ndarray, rot: np.ndarray):
        T, V = len(idx), self.model.num_vertices
        if seq.vertices is None or seq.vertices_valid is None:
            return np.zeros((T, 2, V, 3)), np.zeros((T, 2), bool)
        valid = seq.vertices_valid[idx] & real[:, None]
        if not valid.any():
            return np.zeros((T, 2, V, 3)), valid
        verts = np.asarray(seq.vertices(idx), dtype=np.float64)
        if verts.shape != (T, 2, V, 3):
            raise ValueError(f"vertices of {seq.name}: expected shape {(T, 2, V, 3)} for the hand model in use, "
                             f"got {verts.shape}")
        verts = np.where(valid[..., None, None], verts @ rot.T, 0.0)
        return verts, valid
