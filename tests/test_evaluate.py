"""Evaluation: metric values against an independent computation, window blending against hand-computed weights,
and the files ``interhand evaluate`` writes (markdown, JSON, a PCK curve that is not blank)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core_model.cli import main
from core_model.data.synth import generate_dataset
from core_model.data.synthetic import load_synthetic_sequences
from core_model.data.windows import WindowDataset
from core_model.evaluate import SequencePrediction, compute_metrics, predict_sequences
from core_model.geometry.interpenetration import HandMeshes
from core_model.network import STCNet, STCNetConfig, save_checkpoint


@pytest.fixture(scope="module")
def test_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("eval_synth")
    generate_dataset(root, 2, 12, 96, seed=4, split="test", hand_model="openhand")
    return root


def _umeyama_error(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean joint error after the best similarity transform (Umeyama 1991), written out in numpy."""
    mp, mg = pred.mean(0), gt.mean(0)
    p, g = pred - mp, gt - mg
    u, s, vt = np.linalg.svd(g.T @ p / len(p))
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ d @ vt
    scale = np.trace(np.diag(s) @ d) / p.var(0).sum()
    aligned = scale * p @ rot.T + mg
    return float(np.linalg.norm(aligned - gt, axis=-1).mean())


def test_metrics_against_an_independent_computation(test_root, openhand):
    seq = load_synthetic_sequences(test_root, openhand)[0]
    n = len(seq)
    gt = seq.keypoints3d.astype(np.float64)
    gt_vertices = seq.vertices(np.arange(n)).astype(np.float64)
    # Each hand moved rigidly (the left one 0.5 m away: no contact), the index tip 20.5 mm off along z.
    shift = np.array([[0.01, -0.02, 0.03], [0.5, 0.0, -0.01]])
    pred = gt + shift[None, :, None, :]
    pred[:, :, 8, 2] += 0.0205
    vertices = gt_vertices + shift[None, :, None, :]
    valid = np.ones((n, 2), bool)
    prediction = SequencePrediction("s", pred.astype(np.float32), vertices.astype(np.float32), gt.astype(np.float32),
                                    gt_vertices.astype(np.float32), valid, valid)
    result = compute_metrics([prediction], HandMeshes.from_model(openhand))

    pa = np.mean([_umeyama_error(pred[t, h], gt[t, h]) for t in range(n) for h in range(2)]) * 1000
    mrrpe = np.linalg.norm(shift[1] - shift[0]) * 1000
    thresholds = np.arange(51.0)
    pck = np.where(thresholds < 20.5, 20 / 21, 1.0)
    for protocol, row in result.rows.items():
        # At 0 mm the unmoved joints count only where float rounding left them exactly in place.
        assert 1 / 21 <= result.pck[protocol][0] <= 20 / 21
        pck[0] = result.pck[protocol][0]
        auc = np.sum((pck[1:] + pck[:-1]) / 2) / 50
        assert row["MPJPE"] == pytest.approx(20.5 / 21, abs=2e-3), protocol   # one joint of 21 is off
        assert row["MPVPE"] == pytest.approx(0, abs=2e-3), protocol
        assert row["Accel_E"] == pytest.approx(0, abs=2e-3), protocol
        assert row["MRRPE"] == pytest.approx(mrrpe, abs=2e-3), protocol
        assert row["PA-MPJPE"] == pytest.approx(pa, abs=2e-3)
        assert row["MMPD"] == 0
        assert row["AUC"] == pytest.approx(auc, abs=1e-3), protocol
        np.testing.assert_allclose(result.pck[protocol], pck, atol=1e-6)
    assert (result.frames, result.sequences, result.valid_hands) == (n, 1, 2 * n)


def test_evaluation_gives_the_hands_that_interhand_run_gives(test_root, openhand, tmp_path):
    """``interhand evaluate`` and ``interhand run`` share one windowed path: on the same crops (the evaluation's
    crops written as the frames of an image folder, the run's region the whole frame) they give the same hands."""
    from core_model.data.windows import AugmentParams
    from core_model.pipeline.run import reconstruct

    torch.manual_seed(0)
    model = STCNet(STCNetConfig.from_preset("lite", input_size=64, frames=4), openhand,
                   imagenet_weights=None).eval()
    dataset = WindowDataset(load_synthetic_sequences(test_root, openhand)[:1], openhand, window=4, crop_size=64)
    n = len(dataset.sequences[0])
    crops = dataset.build(0, 0, AugmentParams(), length=n).images
    frames = tmp_path / "frames"
    frames.mkdir()
    pixels = (crops.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    for k, image in enumerate(pixels):
        Image.fromarray(image).save(frames / f"{k:04d}.png")
    dataset.build = _quantised(dataset.build)  # the evaluation sees the same 8-bit crops the run reads
    (prediction,) = predict_sequences(model, dataset, overlap=2, batch=2)
    result = None
    for event in reconstruct(frames, tmp_path / "run.npz", model, model_preset="lite", roi=(0, 0, 64, 64),
                             overlap=2, batch=3):
        result = event.result or result
    assert result is not None and np.isfinite(result.keypoints).all()  # every frame reconstructed
    np.testing.assert_allclose(result.keypoints, prediction.keypoints, atol=1e-5)
    np.testing.assert_allclose(result.vertices, prediction.vertices, atol=1e-5)
    assert np.abs(prediction.keypoints[:, 0] - prediction.keypoints[:, 0, :1]).max() > 0.01  # not degenerate


def _quantised(build):
    def quantised(*args, **kwargs):
        window = build(*args, **kwargs)
        window.images = (window.images * 255).round() / 255
        return window

    return quantised


def test_evaluate_command_writes_markdown_json_and_png(test_root, openhand, tmp_path):
    torch.manual_seed(0)
    model = STCNet(STCNetConfig.from_preset("lite", input_size=64, frames=4), openhand, imagenet_weights=None)
    checkpoint = save_checkpoint(tmp_path / "model.pt", model)
    out = tmp_path / "eval"
    code = main(["evaluate", "--checkpoint", str(checkpoint), "--data", str(test_root), "--out", str(out),
                 "--batch", "2", "--device", "cpu", "--label", "untrained"])
    assert code == 0
    report = json.loads((out / "metrics.json").read_text())
    assert set(report["protocols"]) == {"wrist", "mcp-scaled"}
    for row in report["protocols"].values():
        for column in ("Accel_E", "MMPD", "MPJPE", "MPVPE", "PA-MPJPE", "MRRPE", "AUC"):
            assert row[column] is not None and np.isfinite(row[column]) and row[column] >= 0, column
    assert report["protocols"]["wrist"]["PA-MPJPE"] == report["protocols"]["mcp-scaled"]["PA-MPJPE"]
    assert report["counts"] == {"sequences": 2, "frames": 24, "valid_hands": 48}
    assert report["meta"]["overlap"] == 2 and report["meta"]["rel_transl"] == "pred"
    assert len(report["pck_curve"]["thresholds_mm"]) == len(report["pck_curve"]["wrist"]) == 51
    markdown = (out / "metrics.md").read_text()
    assert "## untrained" in markdown and "| wrist |" in markdown and "| mcp-scaled |" in markdown
    image = np.asarray(Image.open(out / "pck.png").convert("L"), dtype=float)
    assert image.shape[0] > 200 and image.shape[1] > 200 and image.std() > 10
    assert (image < 128).mean() > 0.005  # axes, text and curves drawn, not a blank canvas
    assert main(["evaluate", "--checkpoint", str(tmp_path / "missing.pt"), "--data", str(test_root),
                 "--out", str(out)]) == 2
