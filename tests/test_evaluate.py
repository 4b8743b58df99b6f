"""Evaluation: metric values against an independent computation, window blending against hand-computed weights,
and the files ``interhand evaluate`` writes (markdown, JSON, a PCK curve that is not blank)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

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


class _CountingModel(torch.nn.Module):
    """Returns, for the k-th window it sees, keypoints and vertices all equal to k (one window per call)."""

    def __init__(self, frames: int, vertices: int) -> None:
        super().__init__()
        self.config = SimpleNamespace(frames=frames, input_size=64, landmarks=False)
        self.vertices = vertices
        self.calls = 0

    def forward(self, images: torch.Tensor, rel_transl=None, landmarks=None):
        assert images.shape[0] == 1
        value = float(self.calls)
        self.calls += 1
        T = images.shape[1]
        return SimpleNamespace(keypoints=torch.full((1, T, 2, 21, 3), value),
                               vertices=torch.full((1, T, 2, self.vertices, 3), value))


def test_overlapping_windows_are_blended(test_root, openhand):
    sequences = load_synthetic_sequences(test_root, openhand)[:1]
    dataset = WindowDataset(sequences, openhand, window=4, crop_size=64)
    model = _CountingModel(4, openhand.num_vertices)
    (prediction,) = predict_sequences(model, dataset, overlap=2, batch=1)
    # 12 frames, T = 4, overlap 2: windows start at 0, 2, 4, 6, 8; weights over a window 1/3, 2/3, 2/3, 1/3.
    w = np.array([1, 2, 2, 1]) / 3
    expected = np.zeros(12)
    total = np.zeros(12)
    for k, start in enumerate(range(0, 9, 2)):
        expected[start:start + 4] += w * k
        total[start:start + 4] += w
    expected /= total
    np.testing.assert_allclose(prediction.keypoints[:, 0, 0, 0], expected, atol=1e-6)
    np.testing.assert_allclose(prediction.vertices[:, 1, -1, 2], expected, atol=1e-6)
    assert expected[0] == 0 and expected[2] == pytest.approx(1 / 3) and expected[11] == 4
    np.testing.assert_allclose(prediction.gt_keypoints, sequences[0].keypoints3d, atol=1e-6)
    assert prediction.valid.all() and prediction.vertices_valid.all()


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
