"""A killed ``interhand run`` continues: SIGKILL mid-way leaves the run's parts folder, the same command continues
from the last checkpoint instead of starting again, and the result's arrays are those of an uninterrupted run, bit
for bit (the meta differs in its creation time only). Cancel and Ctrl-C still leave nothing behind
(test_pipeline_run.py, test_pipeline_bad_input.py)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from core_model.results import load_result

REPO = Path(__file__).resolve().parents[1]


def write_noise_clip(path: Path, n: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (160, 120))
    for i in range(n):
        writer.write(np.random.default_rng(i).integers(0, 255, (120, 160, 3), np.uint8))
    writer.release()
    return path


@pytest.fixture(scope="module")
def run_inputs(tmp_path_factory, openhand):
    """A 100-frame clip and a small saved checkpoint (weights fixed: a resumed run must see the same model)."""
    import torch

    from core_model.network import STCNet, STCNetConfig, save_checkpoint

    folder = tmp_path_factory.mktemp("resume")
    torch.manual_seed(0)
    model = STCNet(STCNetConfig.from_preset("lite", input_size=64, frames=4), openhand, imagenet_weights=None)
    return {"clip": write_noise_clip(folder / "clip.avi", 100), "checkpoint": save_checkpoint(folder / "ck.pt", model)}


def command(inputs, output: Path) -> list[str]:
    return [sys.executable, "-m", "core_model.cli", "run", str(inputs["clip"]), "-o", str(output), "--roi",
            "10,10,100,100", "--checkpoint", str(inputs["checkpoint"]), "--hand-model", "openhand", "--batch", "1",
            "--threads", "1"]


ENV = {**os.environ, "INTERHAND_CHECKPOINT_SECONDS": "0"}  # a checkpoint after every batch


def arrays_of(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files if name != "meta"}


@pytest.mark.parametrize("kill_at", ["model", "refine"])
def test_a_killed_run_continues_and_writes_what_an_uninterrupted_run_writes(tmp_path, run_inputs, kill_at):
    """Killed with 40 % of the windows run, or once every window has run (while refining): the same command
    continues from its last checkpoint and the result's arrays are the uninterrupted run's, bit for bit."""
    extra = ["--refine"] if kill_at == "refine" else []
    whole = tmp_path / "whole" / "r.npz"
    done = subprocess.run(command(run_inputs, whole) + extra, cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr

    out = tmp_path / "killed" / "r.npz"
    proc = subprocess.Popen(command(run_inputs, out) + extra, cwd=REPO, env=ENV, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        for line in proc.stderr:  # non-tty progress: "model: 40% (20/49)" lines, one per 10 %
            lines.append(line)
            match = re.match(r"(model|refine): (\d+)% ", line)
            if match and match.group(1) == kill_at and (kill_at == "refine" or int(match.group(2)) >= 40):
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, "".join(lines)
    parts = [p for p in out.parent.iterdir() if p.name.endswith(".parts")]
    assert len(parts) == 1 and not out.exists()
    record = json.loads((parts[0] / "run.json").read_text())
    done_windows, total = record["progress"]["windows_done"], record["progress"]["windows_total"]
    assert 0 < done_windows < total if kill_at == "model" else done_windows == total

    started = time.monotonic()
    again = subprocess.run(command(run_inputs, out) + extra, cwd=REPO, env=ENV, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr
    assert "continuing an interrupted run (parts in" in again.stderr  # pass 1 was not run again
    match = re.search(r"continuing an interrupted run: (\d+) of (\d+) windows", again.stderr)
    assert match and (int(match.group(1)), int(match.group(2))) == (done_windows, total), again.stderr
    assert again.stderr.count("detect:") == 1  # one line at 100 %: no frame went through the detector again
    assert sorted(p.name for p in out.parent.iterdir()) == ["r.npz"]  # parts folder and temporary file gone
    assert time.monotonic() - started < 600

    expected, got = arrays_of(whole), arrays_of(out)
    assert sorted(expected) == sorted(got)
    for name in expected:
        assert expected[name].dtype == got[name].dtype and np.array_equal(expected[name], got[name],
                                                                          equal_nan=True), name
    meta_a, meta_b = load_result(whole).meta, load_result(out).meta
    meta_a.created = meta_b.created
    if kill_at == "refine":
        assert set(expected) >= {"refined_vertices", "refined_gate"}
        meta_a.extra["refine"]["seconds"] = meta_b.extra["refine"]["seconds"]
    assert meta_a == meta_b
    with zipfile.ZipFile(out) as archive:
        assert "window_frames.npy" in archive.namelist()


def test_restart_and_other_settings_start_again(tmp_path, run_inputs, capsys):
    """``--restart`` discards the parts; a run with other settings neither uses nor keeps another run's parts once
    it has written the result they were for."""
    from core_model.cli import main
    from core_model.pipeline import parts as run_parts

    out = tmp_path / "r.npz"
    stale = out.parent / f".{out.stem}.0123456789abcdef.parts"
    stale.mkdir()
    (stale / "run.json").write_text(json.dumps({"format": run_parts.FORMAT, "version": run_parts.VERSION,
                                                 "key": "other", "output": str(out.resolve()),
                                                 "progress": {"windows_done": 3, "windows_total": 9}}))
    assert [r.windows_done for r in run_parts.interrupted_runs(out)] == [3]
    args = command(run_inputs, out)[3:-4] + ["--batch", "2", "--restart"]  # another batch: another run
    assert main(args) == 0
    assert "continuing" not in capsys.readouterr().err
    assert sorted(p.name for p in out.parent.iterdir()) == ["r.npz"]
    assert run_parts.interrupted_runs(out) == []
