"""Training: the loss falls on a tiny synthetic set; resume (explicit, automatic, after a time budget) continues
exactly as the uninterrupted run; two gloo processes under torchrun; the ablation switches; the objective's
ground-truth alignment, masks and 2D convention."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core_model.cli import main
from core_model.data.synth import generate_dataset
from core_model.data.windows import Window, collate_windows
from core_model.network.checkpoint import read_checkpoint
from core_model.network.decoder import weak_perspective_project
from core_model.network.output import STCNetOutput
from core_model.train import EXIT_STOPPED, config_from_args, train
from core_model.training.config import ObjectiveConfig, TrainConfig
from core_model.training.datasets import build_windows, item_seed
from core_model.training.logbook import format_curve, read_log
from core_model.training.objective import batch_loss
from core_model.training.state import LAST, read_training_state

REPO = Path(__file__).resolve().parents[1]
TINY = {"input_size": 64, "frames": 4, "batch_size": 2, "workers": 0, "hand_model": "openhand",
        "imagenet_weights": None, "log_every": 1}


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train_synth")
    generate_dataset(root, 2, 12, 96, seed=21, split="train", hand_model="openhand")
    return root


def _config(root: Path, out: Path, **changes) -> TrainConfig:
    return TrainConfig(data=(str(root),), out=str(out), **{**TINY, **changes})


def test_loss_falls_and_logs(synth_root, tmp_path):
    result = train(_config(synth_root, tmp_path / "run", steps=30, augment=False, checkpoint_every=10))
    assert (result.status, result.step, result.total_steps) == ("finished", 30, 30)
    records = read_log(tmp_path / "run")
    assert [r["step"] for r in records] == list(range(1, 31))
    losses = np.array([r["train"]["total"] for r in records])
    errors = np.array([r["train"]["joint_err_mm"] for r in records])
    assert losses[-5:].mean() < 0.7 * losses[:5].mean(), losses
    assert errors[-5:].mean() < errors[:5].mean(), errors
    assert all(np.isfinite(list(r["train"].values())).all() for r in records)
    assert "joint err mm" in format_curve(records)
    # TensorBoard can read the scalars back.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "tb"))
    events.Reload()
    totals = events.Scalars("train/total")
    assert [e.step for e in totals] == list(range(1, 31))
    assert totals[-1].value == pytest.approx(losses[-1], rel=1e-5)
    # The checkpoint loads with weights_only and holds the run's state.
    raw = torch.load(tmp_path / "run" / LAST, weights_only=True)
    assert raw["extra"]["train"]["progress"]["step"] == 30
    state = read_training_state(tmp_path / "run" / LAST)
    assert state.progress.finished and TrainConfig.from_dict(state.config) == _config(
        synth_root, tmp_path / "run", steps=30, augment=False, checkpoint_every=10)
    assert all(int(s["step"]) == 30 for s in state.optimizer["state"].values())
    # Running the finished run again does nothing.
    again = train(_config(synth_root, tmp_path / "run", steps=30, augment=False, checkpoint_every=10))
    assert (again.status, again.step) == ("finished", 30)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path).state_dict


def test_resume_continues_exactly(synth_root, tmp_path):
    # 6 windows, batch 2: 3 steps per epoch, so step 2 is inside an epoch. Augmentation and dropout are on.
    settings = {"steps": 6, "checkpoint_every": 2, "keep_every": 2}
    whole = train(_config(synth_root, tmp_path / "whole", **settings))
    assert whole.step == 6
    reference = _weights(tmp_path / "whole" / LAST)

    # An interruption after step 3 loses at most one interval: continue from the copy kept at step 2.
    resumed = train(_config(synth_root, tmp_path / "resumed", **settings),
                    resume=tmp_path / "whole" / "step_00000002.pt")
    assert (resumed.status, resumed.step) == ("finished", 6)
    state = read_training_state(tmp_path / "resumed" / LAST)
    assert all(int(s["step"]) == 6 for s in state.optimizer["state"].values())
    for name, value in _weights(tmp_path / "resumed" / LAST).items():
        torch.testing.assert_close(value, reference[name], rtol=1e-4, atol=1e-6, msg=name)

    # A time budget stops after one step with a checkpoint (exit status 75); training again resumes by itself.
    code = main(["train", "--data", str(synth_root), "--out", str(tmp_path / "budget"), "--input-size", "64",
                 "--frames", "4", "--batch", "2", "--workers", "0", "--hand-model", "openhand",
                 "--imagenet-weights", "none", "--log-every", "1", "--steps", "6", "--checkpoint-every", "2",
                 "--keep-every", "2", "--max-minutes", "1e-6"])
    assert code == EXIT_STOPPED
    assert read_training_state(tmp_path / "budget" / LAST).progress.step == 1
    finished = train(_config(synth_root, tmp_path / "budget", **settings))
    assert (finished.status, finished.step) == ("finished", 6)
    assert [r["step"] for r in read_log(tmp_path / "budget")] == list(range(1, 7))
    for name, value in _weights(tmp_path / "budget" / LAST).items():
        torch.testing.assert_close(value, reference[name], rtol=1e-4, atol=1e-6, msg=name)
    with pytest.raises(ValueError, match="already holds"):
        train(_config(synth_root, tmp_path / "budget", **settings), resume=None)


@pytest.mark.parametrize("cached", [False, True], ids=["images", "feature-cache"])
def test_torchrun_two_gloo_processes(synth_root, tmp_path, cached):
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "core_model.cli", "train", "--data", str(synth_root), "--out", str(out), "--input-size", "64",
               "--frames", "4", "--batch", "1", "--workers", "0", "--steps", "4", "--checkpoint-every", "2",
               "--log-every", "2", "--device", "cpu", "--hand-model", "openhand", "--imagenet-weights", "none",
               "--no-tensorboard"]
    if cached:  # rank 0 builds the cache, rank 1 finds it after the barrier
        command += ["--preset", "lite-landmarks", "--freeze-stride", "32", "--feature-cache", str(tmp_path / "f.pt")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    state = read_training_state(out / LAST)
    assert (state.progress.step, state.progress.world_size) == (4, 2)
    # 6 windows over 2 processes at 1 window each: 3 steps per epoch, the same on both.
    assert state.progress.steps_per_epoch == 3
    assert [r["step"] for r in read_log(out)] == [2, 4]
    assert result.stdout.count("finished: step 4 of 4") == 1  # rank 0 alone reports
    if cached:
        assert (tmp_path / "f.pt").is_file() and result.stderr.count("windows encoded in") == 1


def test_ablation_switches(tmp_path):
    base = {"data": (str(tmp_path),), "input_size": 64}
    assert TrainConfig(**base).run_name == "baseline+te+pc+tc"
    cases = {("tc",): "baseline+te+pc", ("pc", "tc"): "baseline+te", ("te", "pc", "tc"): "baseline",
             ("mhca",): "no-mhca"}
    for removed, name in cases.items():
        assert TrainConfig(**base, ablate=removed).resolved_ablation().name == name
    baseline = TrainConfig(**base, ablation="baseline")
    net = baseline.network_config()
    assert not net.temporal_encoder and not net.cross_attention
    losses = baseline.effective_objective().losses
    assert not losses.use_inter and not losses.use_smooth and losses.use_joint and losses.use_mano
    no_mano = TrainConfig(**base, ablate=("mano",))
    losses = no_mano.effective_objective().losses
    assert not losses.use_mano and not losses.use_reg and losses.use_inter and losses.use_smooth
    assert no_mano.run_name == "baseline+te+pc+tc-no-mano-loss"
    assert TrainConfig.from_dict(no_mano.to_dict()) == no_mano
    with pytest.raises(ValueError, match="ablate"):
        TrainConfig(**base, ablate=("xx",))
    with pytest.raises(ValueError, match="input_size"):
        TrainConfig(**base | {"input_size": 70})
    with pytest.raises(ValueError, match="data"):
        TrainConfig()


def test_cli_defaults_are_the_papers_recipe():
    from core_model.cli import build_parser

    args = build_parser().parse_args(["train", "--data", "x", "--out", "y"])
    config = config_from_args(args)
    assert (config.lr, config.lr_decay, config.lr_step_epochs, config.epochs, config.batch_size,
            config.weight_decay, config.frames, config.adam_betas[0]) == (1e-3, 0.1, 10.0, 30, 32, 1e-4, 10, 0.9)
    losses = config.objective.losses
    assert (losses.lambda_joint, losses.lambda_inter, losses.lambda_mano, losses.lambda_reg) == (100, 10, 1, 0.1)
    assert config.preset == "lite" and EXIT_STOPPED == 75


def _output_from_ground_truth(window: Window, camera: torch.Tensor) -> STCNetOutput:
    """An STCNet output that equals the window's ground truth in STCNet's frame (right wrist at the origin)."""
    kp = window.keypoints3d - window.keypoints3d[:, :, :1, :1]
    B, T = kp.shape[:2]
    local = kp - kp[..., :1, :]
    zeros = torch.zeros(B, T, 2, 3)
    return STCNetOutput(
        betas=window.betas.clone(), global_orient=window.global_orient, hand_pose=window.hand_pose,
        rotmats=torch.eye(3).expand(B, T, 2, 16, 3, 3), transl=zeros,
        vertices=window.vertices - window.keypoints3d[:, :, :1, :1], keypoints=kp.clone(), joints=kp[..., :16, :],
        rel_transl=window.root_rel, rel_transl_pred=window.root_rel.clone(), camera=camera,
        keypoints2d=weak_perspective_project(local, camera), chirality_maps=torch.zeros(B, T, 2, 2, 2),
        mhsa_attention=None, mhca_attention=None, hand_model="OpenHand")


def test_objective_alignment_masks_and_2d_convention(synth_root, openhand):
    dataset = build_windows([str(synth_root)], openhand, window=4, crop_size=64)
    window = collate_windows([dataset[0], dataset[1]])
    B, T, S = 2, 4, 64
    camera = torch.tensor([8.0, 0.1, -0.2]).expand(B, T, 2, 3).clone()
    output = _output_from_ground_truth(window, camera)
    # Ground-truth 2D that the camera reproduces exactly, written in crop pixels (centres at integers).
    uv = output.keypoints2d
    window = dataclasses.replace(window, keypoints2d=(uv + 1) * S / 2 - 0.5)
    config = ObjectiveConfig(losses=dataclasses.replace(ObjectiveConfig().losses, use_inter=False,
                                                        use_smooth=False, use_reg=False, use_consist=False))
    perfect = batch_loss(output, window, config, None, injected=False).as_floats()
    assert perfect["joint"] == pytest.approx(0, abs=1e-6) and perfect["rel"] == pytest.approx(0, abs=1e-6)
    assert perfect["reproj"] == pytest.approx(0, abs=1e-5) and perfect["mano"] == pytest.approx(0, abs=1e-6)
    assert perfect["joint_err_mm"] == pytest.approx(0, abs=1e-3)

    # One valid joint 1 cm off in one frame: eq. 7 gives 0.01 / T for that batch item, / B over the batch.
    moved = dataclasses.replace(output, keypoints=output.keypoints.clone())
    moved.keypoints[0, 1, 1, 8, 2] += 0.01
    terms = batch_loss(moved, window, config, None, injected=False).as_floats()
    assert terms["joint"] == pytest.approx(0.01 / T / B, rel=1e-4)
    assert terms["total"] == pytest.approx(100 * 0.01 / T / B + 10 * terms["reproj"], rel=1e-4)
    # The same joint marked invalid adds nothing; a missing right wrist drops the whole frame.
    masked = dataclasses.replace(window, joint_valid=window.joint_valid.clone())
    masked.joint_valid[0, 1, 1, 8] = False
    assert batch_loss(moved, masked, config, None, injected=False).as_floats()["joint"] == pytest.approx(0, abs=1e-6)
    far = dataclasses.replace(output, keypoints=output.keypoints + 0.05)
    no_wrist = dataclasses.replace(window, joint_valid=window.joint_valid.clone())
    no_wrist.joint_valid[:, :, 0, 0] = False
    assert batch_loss(far, no_wrist, config, None, injected=False).as_floats()["joint"] == 0
    # Betas only where the parameters are valid for the hand model in use.
    off = dataclasses.replace(output, betas=output.betas + 0.5)
    invalid = dataclasses.replace(window, params_valid=torch.zeros_like(window.params_valid))
    assert batch_loss(off, window, config, None, injected=False).as_floats()["mano"] > 0
    assert batch_loss(off, invalid, config, None, injected=False).as_floats()["mano"] == 0
    # The 2D loss trains the camera only unless asked otherwise.
    kp = output.keypoints.clone().requires_grad_(True)
    cam = (camera + 0.1).requires_grad_(True)
    batch_loss(dataclasses.replace(output, keypoints=kp, camera=cam), window,
               dataclasses.replace(config, use_rel=False), None, injected=False).terms["reproj"].backward()
    assert kp.grad is None or kp.grad.abs().max() == 0
    assert cam.grad.abs().max() > 0


def test_item_seed_spreads():
    seeds = {item_seed(0, e, i) for e in range(5) for i in range(200)}
    assert len(seeds) == 1000 and all(0 <= s < 2 ** 63 for s in seeds)


def test_bad_arguments_are_named(synth_root, tmp_path):
    with pytest.raises(ValueError, match="batch_size"):
        train(_config(synth_root, tmp_path / "big", batch_size=64, steps=1))
    with pytest.raises(FileNotFoundError, match="data"):
        train(TrainConfig(data=(str(tmp_path / "missing"),), out=str(tmp_path / "r"), **TINY))
    with pytest.raises(FileNotFoundError, match="resume"):
        train(_config(synth_root, tmp_path / "r2", steps=1), resume=tmp_path / "nope.pt")
