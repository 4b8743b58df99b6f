"""``interhand run`` on bad input: each case a clear message, a non-zero exit status and nothing left behind in the
output folder (no result, no temporary file, no parts folder). Missing file, a non-video named .mp4, no hands
anywhere and an output path under a file are in ``test_pipeline_run.py``; the sources themselves are tested in
``test_pipeline_video.py``."""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from core_model.cli import main

REPO = Path(__file__).resolve().parents[1]


def write(path: Path, frames: list[np.ndarray], fourcc: str = "MJPG", fps: float = 10.0, color: bool = True) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h), color)
    assert writer.isOpened(), f"OpenCV cannot write {fourcc}"
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def noise(n: int, h: int = 96, w: int = 128) -> list[np.ndarray]:
    return [np.random.default_rng(i).integers(0, 255, (h, w, 3), np.uint8) for i in range(n)]


def left_behind(folder: Path, inputs: set[str]) -> list[str]:
    """Everything in ``folder`` that is not an input (hidden temporary files and folders included)."""
    return sorted(p.name for p in folder.iterdir() if p.name not in inputs)


def test_truncated_video_keeps_the_readable_part_and_says_where_it_stopped(tmp_path, capsys):
    from core_model.results import load_result

    clip = write(tmp_path / "cut.avi", noise(40))
    clip.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    out = tmp_path / "r.npz"
    assert main(["run", str(clip), "-o", str(out), "--roi", "10,10,64,64"]) == 3
    err = capsys.readouterr().err
    assert "decoding stopped after frame" in err and "of the 40 the file announces" in err
    assert "truncated" in err and "holds the frames before the damage" in err
    result = load_result(out)
    assert 5 < result.num_frames < 40 and np.isfinite(result.vertices).all()
    assert "stopped after frame" in result.meta.extra["decode_stopped"]
    assert left_behind(tmp_path, {"cut.avi", "r.npz"}) == []


@pytest.mark.parametrize(("case", "message"), [("zero frames", "no decodable frame|not a video"),
                                               ("1x1", "frames are 1x1")])
def test_unusable_videos_are_refused(tmp_path, capsys, case, message):
    clip = tmp_path / "bad.avi"
    if case == "zero frames":
        cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48)).release()
    else:
        write(clip, [np.zeros((1, 1, 3), np.uint8)] * 3)
    out = tmp_path / "r.npz"
    assert main(["run", str(clip), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("interhand run: error: ") and re.search(message, err)
    assert left_behind(tmp_path, {"bad.avi"}) == []


def test_grayscale_and_16_bit_videos_run(tmp_path, capsys):
    from core_model.results import load_result

    gray = write(tmp_path / "gray.avi", [np.full((48, 64), 40 * i, np.uint8) for i in range(1, 6)], color=False)
    deep = tmp_path / "deep.mkv"
    params = [cv2.VIDEOWRITER_PROP_DEPTH, cv2.CV_16U, cv2.VIDEOWRITER_PROP_IS_COLOR, 0]
    writer = cv2.VideoWriter(str(deep), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"FFV1"), 10.0, (64, 48), params)
    assert writer.isOpened(), "OpenCV cannot write 16-bit FFV1"
    for i in range(5):
        writer.write(np.full((48, 64), 10000 * (i + 1), np.uint16))
    writer.release()
    for clip in (gray, deep):
        out = tmp_path / f"{clip.stem}.npz"
        assert main(["run", str(clip), "-o", str(out), "--roi", "0,0,48,48"]) == 0, capsys.readouterr().err
        result = load_result(out)
        assert result.num_frames == 5 and np.isfinite(result.vertices).all()
    assert left_behind(tmp_path, {"gray.avi", "deep.mkv", "gray.npz", "deep.npz"}) == []


def _python(code: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300,
                          **kwargs)


def test_8k_video_runs_with_sane_memory(tmp_path):
    frame = np.zeros((4320, 7680, 3), np.uint8)
    cv2.circle(frame, (3800, 2100), 300, (150, 170, 200), -1)
    clip = write(tmp_path / "big.avi", [frame, frame], fps=5)
    out = tmp_path / "r.npz"
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child of a big pytest process would
    # report its parent's peak.
    code = ("import re, sys\nfrom core_model.cli import main\n"
            f"rc = main(['run', {str(clip)!r}, '-o', {str(out)!r}, '--roi', '3400,1700,800,800'])\n"
            "hwm = re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1)\n"
            "print('MAXRSS_MB', int(hwm) / 1024)\nsys.exit(rc)")
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr[-2000:]
    peak = float(proc.stdout.split("MAXRSS_MB")[1])
    # Two 100 MB frames (decoded, then RGB) on top of torch, MediaPipe and the model: far below the 2 GB target.
    assert peak < 1500, f"peak RSS {peak:.0f} MB"
    assert left_behind(tmp_path, {"big.avi", "r.npz"}) == []


def drop_root_file_override() -> None:
    """In a child before exec: take CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH and CAP_FOWNER out of the capability
    bounding set (prctl PR_CAPBSET_DROP), so that a root process obeys permission bits like any user."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2, 3):
        if libc.prctl(24, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def read_only_run(*args: str) -> subprocess.CompletedProcess:
    """``python -c`` or ``-m`` with ``args``, as a process for which chmod 555 makes a folder read-only: as root,
    without the capabilities that override permission bits; as anyone else, as is."""
    root = os.geteuid() == 0
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO, timeout=300,
                          preexec_fn=drop_root_file_override if root else None)


def test_read_only_output_folder(tmp_path):
    clip = write(tmp_path / "c.avi", noise(3))
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        probe = read_only_run("-c", f"open({str(ro / 'probe')!r}, 'w')")
        assert probe.returncode == 1 and "PermissionError" in probe.stderr  # the folder is read-only for real
        proc = read_only_run("-m", "core_model.cli", "run", str(clip), "-o", str(ro / "r.npz"), "--roi",
                             "0,0,64,64")
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert "output: the folder" in proc.stderr and "read-only" in proc.stderr
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_checkpoint_of_another_architecture(tmp_path, capsys, openhand):
    from core_model.network import STCNet, STCNetConfig, save_checkpoint

    clip = write(tmp_path / "c.avi", noise(3))
    other = STCNet(STCNetConfig.from_preset("lite", encoder="resnet18", input_size=64, frames=4), openhand,
                   imagenet_weights=None)
    path = save_checkpoint(tmp_path / "resnet.pt", other)
    payload = torch.load(path, weights_only=True)
    payload["config"] = STCNetConfig.from_preset("lite", input_size=64, frames=4).to_dict()  # says Lite0
    torch.save(payload, path)
    plain = tmp_path / "plain.pt"
    torch.save(torch.nn.Conv2d(3, 8, 3).state_dict(), plain)  # a state dict of some other network
    for ckpt, message in ((path, "does not fit this STCNet"), (plain, "not an STCNet checkpoint")):
        out = tmp_path / "r.npz"
        args = ["run", str(clip), "-o", str(out), "--roi", "0,0,64,64", "--checkpoint", str(ckpt),
                "--hand-model", "openhand"]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert f"checkpoint: {ckpt}" in err and message in err
    assert left_behind(tmp_path, {"c.avi", "resnet.pt", "plain.pt"}) == []


def _default_sigint() -> None:
    """A test runner started in the background (``cmd &`` in a script) has SIGINT ignored, which its children
    inherit, and Python then installs no Ctrl-C handler: give the run the default a terminal user has."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_in_the_middle_leaves_nothing(tmp_path, signum):
    clip = write(tmp_path / "long.avi", noise(240, 120, 160))
    out = tmp_path / "made" / "by the run" / "r.npz"  # folders the run makes go again too
    proc = subprocess.Popen([sys.executable, "-m", "core_model.cli", "run", str(clip), "-o", str(out), "--roi",
                             "10,10,100,100", "--batch", "1"], cwd=REPO, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)
    lines = []
    deadline = time.monotonic() + 240
    try:
        for line in proc.stderr:  # non-tty progress: "model: 10% (3/47)" lines
            lines.append(line)
            if line.startswith("model:"):
                assert os.listdir(tmp_path) != ["long.avi"]  # the run's parts folder exists mid-run
                proc.send_signal(signum)
                break
            assert time.monotonic() < deadline, "".join(lines)
        rest = proc.stderr.read()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = "".join(lines) + rest
    assert any(line.startswith("model:") for line in lines), err
    assert proc.returncode == 130, err
    assert "interrupted (Ctrl-C) during model; nothing was written to" in err
    assert "Traceback" not in err
    assert left_behind(tmp_path, {"long.avi"}) == []


def test_mediapipe_chatter_is_held_back_but_warnings_pass(capfd):
    """What MediaPipe's native code prints on every run (LiteRT's INFO lines, absl's warnings about its own
    buffers and regions) does not reach the terminal; any other warning or error does."""
    from core_model.pipeline.detect import MediaPipeHandDetector, native_chatter_held_back

    with MediaPipeHandDetector() as detector:
        for t in range(3):
            detector.detect(np.full((120, 160, 3), 128, np.uint8), t)
    with native_chatter_held_back():
        os.write(2, b"INFO: chatter\n"
                    b"WARNING: Logging before InitGoogle() is written to STDERR\n"
                    b"W0000 00:00:1796402243.939618    3564 inference_runner_litert.cc:1433] Input tensor memory is "
                    b"not aligned according to LiteRt's memory alignment requirements. Reallocating memory and "
                    b"copying data.\n"
                    b"W0000 00:00:1796402243.998214    3564 landmark_projection_calculator.cc:81] Using NORM_RECT "
                    b"without IMAGE_DIMENSIONS is only supported for the square ROI. Provide IMAGE_DIMENSIONS or use "
                    b"PROJECTION_MATRIX.\n"
                    b"W0000 a warning\nE0000 an error\n")
    err = capfd.readouterr().err
    for chatter in ("INFO:", "InitGoogle", "not aligned", "NORM_RECT"):
        assert chatter not in err
    assert "W0000 a warning\nE0000 an error\n" in err
