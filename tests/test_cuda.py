"""CUDA: the GPU paths against the CPU ones, with the tolerances they are held to.

Every test here needs a CUDA device and is skipped where torch sees none (CI runs on the CPU); ``pytest -m cuda``
selects them, and ``INTERHAND_REQUIRE_CUDA=1`` turns the skip into a failure (``scripts/gpu_check.sh`` sets it on
the GPU machine, so that a missing device cannot pass as skipped).

- interpenetration: the torch back end on CUDA against the numpy one (float64: identical masks, depths to 1e-10 m;
  float32, the training dtype: masks agree but for vertices within 10 µm of the other surface, depths to 2 µm);
- STCNet, paper preset at 256 x 256 over a window of 10 frames: forward and backward on CUDA in float32 (TF32 off)
  against the CPU (every output to 1e-3 of its largest value, the gradient to 5e-3 in norm), and under bf16
  autocast (every output to 5 % of its largest value, the chirality maps to 0.1, keypoints and vertices to 2 mm;
  the gradient's cosine with float32's above 0.99: on this project's 2-core CPU, bf16 autocast against float32
  gave at most 1.5 %, 0.044, 0.015 mm and 0.998 for an untrained network);
- ``interhand run --device cuda`` on the demo clip, with the shipped model and refinement, against the same run on
  the CPU; the paper preset end to end on CUDA with bf16 autocast and detection in worker processes;
- training on CUDA, float32 and bf16 autocast: the loss falls over 30 steps, and the checkpoint gives the same
  outputs on the CPU;
- refinement on CUDA against the CPU (it runs on the device of its input).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import pytest
import roma
import torch

DEVICE = os.environ.get("INTERHAND_CUDA_TEST_DEVICE", "cuda")
"""Where the "GPU" side runs: ``cuda``; ``cpu`` runs every test CPU against CPU, to check the tests themselves on a
machine without a GPU (the comparisons then hold trivially)."""
HAVE_CUDA = DEVICE == "cpu" or torch.cuda.is_available()
REQUIRED = os.environ.get("INTERHAND_REQUIRE_CUDA") == "1"
REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not HAVE_CUDA and not REQUIRED, reason="needs a CUDA device (torch sees none)")]


@pytest.fixture(autouse=True)
def _cuda_present():
    if not HAVE_CUDA:  # only reached with INTERHAND_REQUIRE_CUDA=1
        pytest.fail("INTERHAND_REQUIRE_CUDA=1, but torch sees no CUDA device "
                    f"(torch {torch.__version__}, CUDA build {torch.version.cuda})")


@pytest.fixture
def no_tf32():
    """Float32 on the GPU as float32: cuDNN convolutions default to TF32 (10-bit mantissa), which would hide a real
    difference behind 1e-3 relative noise."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


# ------------------------------------------------------------------------------------------- interpenetration


@pytest.fixture(scope="module")
def contact(openhand):
    """32 frames of two OpenHand hands in random poses, a vertex of the left hand moved within millimetres of one of
    the right: contact with overlap on most frames."""
    from core_model.geometry.interpenetration import HandMeshes
    from core_model.handmodel.poses import articulation_to_pose, rest_frames, sample_articulations

    rng = np.random.default_rng(5)
    torch.manual_seed(5)
    n = 32
    poses = [articulation_to_pose(torch.as_tensor(sample_articulations(rng, n), dtype=torch.float32),
                                  rest_frames(layer)) for layer in openhand.sides]
    orient = roma.rotmat_to_rotvec(roma.random_rotmat((n, 2), dtype=torch.float32))
    with torch.no_grad():
        vertices = openhand(torch.zeros(n, 2, 10), orient, torch.stack(poses, 1), torch.zeros(n, 2, 3)).vertices
    vertices = vertices.clone()
    i, j = rng.integers(0, vertices.shape[2], size=(2, n))
    shift = vertices[np.arange(n), 0, i] - vertices[np.arange(n), 1, j]
    vertices[:, 1] += (shift + torch.as_tensor(rng.normal(0, 0.005, (n, 3)), dtype=torch.float32))[:, None]
    return vertices, HandMeshes.from_model(openhand)


def test_interpenetration_on_cuda_agrees_with_numpy(contact):
    from core_model.geometry.interpenetration import detect_interpenetration

    vertices, meshes = contact
    reference = detect_interpenetration(vertices.double().numpy(), meshes, backend="numpy")
    assert reference.inside.any() and (~reference.inside).any()

    exact = detect_interpenetration(vertices.double().to(DEVICE), meshes, backend="torch")
    assert exact.inside.device.type == DEVICE
    np.testing.assert_array_equal(exact.inside.cpu().numpy(), reference.inside)
    np.testing.assert_allclose(exact.depth.cpu().numpy(), reference.depth, atol=1e-10, rtol=0)

    single = detect_interpenetration(vertices.to(DEVICE), meshes, backend="torch")
    inside, depth = single.inside.cpu().numpy(), single.depth.detach().cpu().numpy()
    differ = inside != reference.inside
    assert differ.mean() <= 1e-4, f"{differ.sum()} of {differ.size} vertices differ"
    # Only vertices that lie on the other surface (within float32's reach of it) may be decided differently.
    assert (np.where(reference.inside, reference.depth, depth)[differ] < 1e-5).all()
    both = inside & reference.inside
    np.testing.assert_allclose(depth[both], reference.depth[both], atol=2e-6, rtol=0)


def test_interpenetration_depth_gradients_on_cuda_match_the_cpu(contact):
    from core_model.geometry.interpenetration import detect_interpenetration

    vertices, meshes = contact
    grads = []
    for device in ("cpu", DEVICE):
        v = vertices[:8].double().to(device).requires_grad_(True)
        detect_interpenetration(v, meshes, backend="torch").depth.sum().backward()
        grads.append(v.grad.cpu())
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[1], grads[0], atol=1e-9, rtol=0)


# ------------------------------------------------------------------------------------------------- STCNet


def _paper_pair(openhand):
    """The paper preset (ResNet-50, 256 x 256, T = 10; dropout off so that train mode is deterministic) on the CPU
    and an exact copy on CUDA."""
    from core_model.network import STCNet, STCNetConfig

    torch.manual_seed(0)
    config = STCNetConfig.from_preset("paper", dropout=0.0)
    cpu = STCNet(config, openhand, imagenet_weights=None)
    gpu = copy.deepcopy(cpu).to(DEVICE)
    images = torch.rand(1, config.frames, 3, config.input_size, config.input_size,
                        generator=torch.Generator().manual_seed(1))
    return cpu, gpu, images


def _loss(out) -> torch.Tensor:
    """A scalar that depends on every output the losses use."""
    return (out.keypoints.square().mean() + out.vertices.square().mean() + out.keypoints2d.square().mean()
            + out.camera.square().mean() + out.rel_transl_pred.square().mean() + out.betas.square().mean())


def _close_to_scale(name: str, got: torch.Tensor, want: torch.Tensor, rel: float) -> None:
    scale = float(want.abs().max()) or 1.0
    error = float((got.float().cpu() - want.float()).abs().max())
    assert error <= rel * scale, f"{name}: max difference {error:.3g} against a scale of {scale:.3g}"


def _grad_vector(model) -> torch.Tensor:
    return torch.cat([p.grad.float().flatten().cpu() for p in model.parameters() if p.grad is not None])


def test_stcnet_paper_forward_and_backward_fp32_on_cuda_match_the_cpu(openhand, no_tf32):
    cpu, gpu, images = _paper_pair(openhand)
    with torch.no_grad():
        want, got = cpu.eval()(images), gpu.eval()(images.to(DEVICE))
    for name, tensor in want.tensors().items():
        _close_to_scale(name, getattr(got, name), tensor, 1e-3)

    _loss(cpu.train()(images)).backward()
    _loss(gpu.train()(images.to(DEVICE))).backward()
    g_cpu, g_gpu = _grad_vector(cpu), _grad_vector(gpu)
    assert len(g_cpu) == len(g_gpu) == sum(p.numel() for p in cpu.parameters() if p.requires_grad)
    assert float((g_gpu - g_cpu).norm() / g_cpu.norm()) < 5e-3


def test_stcnet_paper_bf16_autocast_on_cuda_stays_close_to_fp32_cpu(openhand):
    cpu, gpu, images = _paper_pair(openhand)
    with torch.no_grad():
        want = cpu.eval()(images)
        with torch.autocast(DEVICE, dtype=torch.bfloat16):
            got = gpu.eval()(images.to(DEVICE))
    assert {t.dtype for t in got.tensors().values()} == {torch.float32}  # bf16 stays inside the network
    for name, tensor in want.tensors().items():
        if name == "chirality_maps":  # a sigmoid per cell
            assert float((got.chirality_maps.cpu() - tensor).abs().max()) < 0.1
        else:
            _close_to_scale(name, getattr(got, name), tensor, 0.05)
    for name in ("keypoints", "vertices"):
        error = float((getattr(got, name).cpu() - getattr(want, name)).abs().max())
        assert error < 2e-3, f"{name}: {error * 1000:.2f} mm from float32"

    _loss(cpu.train()(images)).backward()
    with torch.autocast(DEVICE, dtype=torch.bfloat16):
        loss = _loss(gpu.train()(images.to(DEVICE)))
    loss.backward()
    g_cpu, g_gpu = _grad_vector(cpu), _grad_vector(gpu)
    assert torch.isfinite(g_gpu).all()
    assert float(torch.nn.functional.cosine_similarity(g_cpu, g_gpu, dim=0)) > 0.99


# ------------------------------------------------------------------------------------------- interhand run


def _run(args: list[str]) -> None:
    from core_model.cli import main

    assert main(["run", *args]) == 0


def test_interhand_run_on_cuda_matches_the_cpu(tmp_path):
    """The shipped model with refinement on the demo clip, on CUDA and on the CPU (float32 both: ``interhand run``
    keeps float32): the network's keypoints agree to 1 mm, the refined ones to 2 mm."""
    from core_model.results import load_result

    clip = REPO / "assets" / "demo" / "demo.mp4"
    for name, device in (("gpu", DEVICE), ("cpu", "cpu")):
        _run([str(clip), "-o", str(tmp_path / f"{name}.npz"), "--device", device, "--refine"])
    gpu, cpu = load_result(tmp_path / "gpu.npz"), load_result(tmp_path / "cpu.npz")
    assert gpu.num_frames == cpu.num_frames == 120
    np.testing.assert_array_equal(gpu.valid, cpu.valid)
    both = cpu.valid.all(-1)
    assert both.any()
    assert np.abs(gpu.keypoints[both] - cpu.keypoints[both]).max() < 1e-3
    refined = np.isfinite(cpu.refined["keypoints"]).all((-1, -2)) & np.isfinite(gpu.refined["keypoints"]).all((-1, -2))
    assert refined.any()
    assert np.abs(gpu.refined["keypoints"][refined] - cpu.refined["keypoints"][refined]).max() < 2e-3
    assert "refine" in gpu.meta.extra


def test_interhand_run_paper_preset_on_cuda_with_detection_workers(tmp_path):
    """The paper preset (untrained head) end to end on CUDA, bf16 autocast on the windows, detection in two worker
    processes: a finished result whose detector arrays match a run detecting in this process."""
    from core_model.network import STCNet, STCNetConfig
    from core_model.pipeline.run import reconstruct
    from core_model.results import load_result

    clip = REPO / "assets" / "demo" / "demo.mp4"
    _run([str(clip), "-o", str(tmp_path / "paper.npz"), "--device", DEVICE, "--untrained", "paper",
          "--batch", "16"])
    result = load_result(tmp_path / "paper.npz")
    assert result.meta.model_preset == "paper" and np.isfinite(result.vertices).all()

    from core_model.handmodel.registry import load_hand_model

    model = STCNet(STCNetConfig.from_preset("paper"), load_hand_model("openhand"), imagenet_weights=None)
    model = model.to(DEVICE).eval()
    outputs = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}.npz"
        with torch.no_grad():
            for _ in reconstruct(clip, out, model, model_preset="paper", batch=16, device=DEVICE,
                                 autocast=torch.bfloat16, detect_workers=workers):
                pass
        outputs[workers] = load_result(out)
    a, b = outputs[1], outputs[2]
    assert a.num_frames == b.num_frames == 120
    # Two segments (68 and 52 frames); the second worker warms up on the 15 frames before its own.
    same = np.isfinite(a.det_score) == np.isfinite(b.det_score)
    assert same.mean() >= 0.95
    assert np.isfinite(b.vertices).all()


# ------------------------------------------------------------------------------------------------ training


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    """The tiny synthetic training set of ``test_train.py``; ``INTERHAND_TEST_SYNTH`` names one made beforehand
    (the GPU machine has no VTK to render it: ``scripts/gpu_bundle.sh`` makes it here)."""
    made = os.environ.get("INTERHAND_TEST_SYNTH")
    if made:
        return Path(made)
    pytest.importorskip("pyvista", reason="rendering the synthetic set needs VTK (or set INTERHAND_TEST_SYNTH)")
    from core_model.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("cuda_synth")
    generate_dataset(root, 2, 12, 96, seed=21, split="train", hand_model="openhand")
    return root


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_steps_on_cuda(synth_root, tmp_path, precision):
    from core_model.network import load_checkpoint
    from core_model.train import train
    from core_model.training.config import TrainConfig
    from core_model.training.logbook import read_log

    config = TrainConfig(data=(str(synth_root),), out=str(tmp_path / "run"), input_size=64, frames=4, batch_size=2,
                         workers=0, hand_model="openhand", imagenet_weights=None, log_every=1, steps=30,
                         augment=False, checkpoint_every=10, device=DEVICE, precision=precision, tensorboard=False)
    result = train(config)
    assert (result.status, result.step) == ("finished", 30)
    losses = np.array([r["train"]["total"] for r in read_log(tmp_path / "run")])
    assert np.isfinite(losses).all() and len(losses) == 30
    assert losses[-5:].mean() < 0.7 * losses[:5].mean(), losses

    # The checkpoint trained on the GPU gives the same outputs on the CPU.
    model_cpu, _ = load_checkpoint(result.checkpoint, None, torch.device("cpu"))
    model_gpu, _ = load_checkpoint(result.checkpoint, None, torch.device(DEVICE))
    images = torch.rand(1, 4, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = model_cpu.eval()(images)
        got = model_gpu.eval()(images.to(DEVICE))
    _close_to_scale("keypoints", got.keypoints, want.keypoints, 1e-3)


# ---------------------------------------------------------------------------------------------- refinement


def test_refinement_on_cuda_matches_the_cpu(openhand):
    """Refinement runs on the device of its input: a 3 cm offset of the left hand, recovered from exact landmarks
    on CUDA as on the CPU, the two results within 0.5 mm."""
    from core_model.handmodel.poses import NAMED_POSES, pose_of
    from core_model.refine import RefineConfig, RefineInput, Refiner
    from core_model.refine.camera import default_intrinsics, project
    from core_model.refine.kinematics import HandSkeleton, rotmats_of

    T = 8
    K = torch.as_tensor(default_intrinsics(640, 480), dtype=torch.float32)
    pose = torch.stack([pose_of(openhand.right, NAMED_POSES["relaxed"]), pose_of(openhand.left, NAMED_POSES["grasp"])])
    roots = torch.tensor([[-0.06, 0.0, 0.5], [0.06, 0.01, 0.52]]).expand(T, 2, 3).clone()
    betas, orient = torch.zeros(T, 2, 10), torch.tensor([[0.3, 0.2, 0.1], [0.2, -0.3, -0.1]]).expand(T, 2, 3)
    hand_pose = pose.expand(T, 2, 45)
    keypoints = HandSkeleton(openhand)(betas, rotmats_of(orient, hand_pose), roots)
    start = roots.clone()
    start[:, 1] += torch.tensor([0.02, -0.01, 0.02])
    data = RefineInput(betas=betas[None], global_orient=orient[None].clone(), hand_pose=hand_pose[None].clone(),
                       roots=start[None], rel_transl=(start[:, 1] - start[:, 0])[None],
                       det_keypoints2d=project(keypoints, K)[None], det_score=torch.full((1, T, 2), 0.95),
                       K=K.expand(1, T, 3, 3), scale_px=torch.full((1, T), 300.0),
                       valid=torch.ones(1, T, 2, dtype=torch.bool), link=torch.ones(1, T - 1, dtype=torch.bool))
    config = RefineConfig(steps=60, use_inter=True, w_rel=0.0, w_root_xy=0.0, w_root_z=0.0, lr_transl=0.004)
    results = {}
    for device in ("cpu", DEVICE):
        refiner = Refiner(copy.deepcopy(openhand), config)
        results[device] = refiner.refine(data.to(device))
    cpu_roots, gpu_roots = results["cpu"].roots[0], results[DEVICE].roots[0].cpu()
    assert float((gpu_roots - roots).norm(dim=-1).max()) < 0.005
    assert float((gpu_roots - cpu_roots).norm(dim=-1).max()) < 5e-4
