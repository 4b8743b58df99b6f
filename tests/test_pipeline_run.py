"""MediaPipe bundle, the detector offline, and ``interhand run`` end to end on generated clips (and on the real
clips in ../shared/real-media when that folder exists)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from core_model.assets import asset_path
from core_model.cli import main

REAL = Path(__file__).resolve().parents[2] / "shared" / "real-media"


def write_clip(path: Path, n: int = 12, size: tuple[int, int] = (160, 120)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, size)
    for i in range(n):
        frame = np.full((size[1], size[0], 3), 90, np.uint8)
        cv2.circle(frame, (40 + 5 * i, 60), 20, (200, 180, 160), -1)
        writer.write(frame)
    writer.release()
    return path


def test_bundle_is_an_aligned_uncompressed_tasks_bundle():
    bundle = asset_path("mediapipe", "hand_landmarker.task")
    assert (bundle.parent / "LICENSE.txt").read_text().startswith(" " * 10)  # the Apache-2.0 text
    with zipfile.ZipFile(bundle) as zf, open(bundle, "rb") as raw:
        assert sorted(zf.namelist()) == ["hand_detector.tflite", "hand_landmarks_detector.tflite"]
        for info in zf.infolist():
            assert info.compress_type == zipfile.ZIP_STORED
            raw.seek(info.header_offset + 26)
            name_len, extra_len = (int.from_bytes(raw.read(2), "little") for _ in range(2))
            assert (info.header_offset + 30 + name_len + extra_len) % 4 == 0
            assert zf.read(info.filename)[4:8] == b"TFL3"  # a TFLite flatbuffer


def test_detector_runs_offline_and_sees_no_hand_in_a_blank_frame():
    from core_model.pipeline.detect import MediaPipeHandDetector

    with MediaPipeHandDetector() as detector:
        hands = detector.detect(np.full((240, 320, 3), 128, np.uint8), 0)
        assert len(hands) == 0
        with pytest.raises(ValueError, match="frame"):
            detector.detect(np.zeros((10, 10), np.uint8), 1)
    with pytest.raises(FileNotFoundError, match="model_path"):
        MediaPipeHandDetector(model_path="/nonexistent.task")


def test_detector_warm_up_loads_the_native_library_once():
    from core_model.pipeline.detect import warm_up_detector

    warm_up_detector()  # through MediaPipe's internal loader: an upgrade that moved it fails here
    warm_up_detector()
    maps = Path("/proc/self/maps")
    if maps.exists():
        assert "libmediapipe" in maps.read_text()


def test_first_mediapipe_import_does_not_pin_the_callers_frames():
    """mediapipe keeps an import-time OSError (no PortAudio for sounddevice) in a module global; its traceback held
    every frame of whatever imported mediapipe first (the app's window, a run's model) until the interpreter's exit,
    where freeing Qt wrappers crashed (see detect._import_tasks). In a fresh interpreter, what the importing frame
    held is freed once it returns."""
    import subprocess
    import sys

    code = ("import gc, weakref\n"
            "from core_model.pipeline.detect import warm_up_detector\n"
            "class Held: pass\n"
            "def start():\n"
            "    held = Held()\n"
            "    warm_up_detector()\n"
            "    return weakref.ref(held)\n"
            "ref = start(); gc.collect()\n"
            "print('freed' if ref() is None else 'pinned')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip().splitlines()[-1:] == ["freed"], out.stdout + out.stderr


def test_run_with_no_hands_anywhere_fails_clearly(tmp_path, capsys):
    clip = write_clip(tmp_path / "nohands.avi")
    out = tmp_path / "r.npz"
    assert main(["run", str(clip), "-o", str(out)]) == 2
    assert "no hands found on any of the 12 frames" in capsys.readouterr().err
    assert not out.exists()


def test_run_bad_inputs(tmp_path, capsys):
    assert main(["run", str(tmp_path / "absent.mp4"), "-o", str(tmp_path / "r.npz")]) == 2
    assert "no such file" in capsys.readouterr().err
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video " * 100)
    assert main(["run", str(fake), "-o", str(tmp_path / "r.npz")]) == 2
    assert "not a video" in capsys.readouterr().err
    clip = write_clip(tmp_path / "c.avi", n=3)
    assert main(["run", str(clip), "-o", str(tmp_path / "r.npz"), "--roi", "1,2,3"]) == 2
    assert "--roi" in capsys.readouterr().err
    bogus = tmp_path / "other.pt"
    import torch

    torch.save({"weights": torch.zeros(3)}, bogus)
    assert main(["run", str(clip), "-o", str(tmp_path / "r.npz"), "--checkpoint", str(bogus)]) == 2
    assert "not an STCNet checkpoint" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["run", str(clip), "-o", str(blocker / "r.npz"), "--roi", "0,0,100,100"]) == 2
    assert not list(tmp_path.glob("**/*.npz"))


@pytest.mark.parametrize("preset", ["lite", "lite-landmarks"])
def test_run_end_to_end_with_a_manual_region_and_cancel(tmp_path, openhand, preset):
    """A manual region on a clip without hands: the run completes (a landmark-guided model with every landmark
    absent) and a cancelled run leaves nothing behind."""
    from core_model.cancel import CancelledError
    from core_model.network import STCNet, STCNetConfig
    from core_model.pipeline.run import reconstruct
    from core_model.results import load_result

    clip = write_clip(tmp_path / "c.avi", n=14)
    model = STCNet(STCNetConfig.from_preset(preset, input_size=64, frames=4), openhand, imagenet_weights=None).eval()
    out = tmp_path / "r.npz"
    events = list(reconstruct(clip, out, model, model_preset=preset, roi=(10, 10, 100, 100), batch=2))
    assert [e.stage for e in events][-1] == "done"
    model_events = [e for e in events if e.stage == "model"]
    assert model_events[-1].done == model_events[-1].total and len(model_events) > 1
    result = load_result(out)
    assert result.num_frames == 14 and np.isfinite(result.vertices).all()
    np.testing.assert_allclose(result.bbox[0], [10, 10, 100, 100])
    assert not result.valid.any()  # the detector saw no hand: reconstructed, but not claimed valid
    assert result.window_frames.shape[1] == 2 and result.mhsa_attention.shape[0] == len(result.window_frames)
    out.unlink()
    calls = []
    with pytest.raises(CancelledError):
        for _ in reconstruct(clip, out, model, model_preset=preset, roi=(10, 10, 100, 100), batch=1,
                             cancel=lambda: calls.append(1) or len(calls) > 2):
            pass
    assert not out.exists() and not list(tmp_path.glob("*.npz"))


needs_real = pytest.mark.skipif(not REAL.is_dir(), reason="../shared/real-media is absent")


@needs_real
def test_handedness_is_right_for_unmirrored_video():
    from core_model.pipeline.detect import MediaPipeHandDetector
    from core_model.pipeline.video import open_source

    with open_source(REAL / "two_hands_rock_sign.mp4") as source, MediaPipeHandDetector() as detector:
        hands = detector.detect(source.read(60), 0)
    assert len(hands) == 2
    right = hands.keypoints[int(np.argmax(hands.right_prob))]
    left = hands.keypoints[int(np.argmin(hands.right_prob))]
    # both palms face the camera: the person's right hand is on the image's left
    assert right[:, 0].mean() < left[:, 0].mean()
    assert hands.right_prob.max() > 0.8 and hands.right_prob.min() < 0.2


@needs_real
def test_clasped_hand_washing_keeps_a_two_hand_region():
    from core_model.pipeline.regions_report import analyse

    regions, _ = analyse(REAL / "handwash_step4R_clasped_fingers.mp4")
    shares = regions.shares()
    assert shares["two_hand_region"] >= 0.9
    assert shares["two_hand_region"] > shares["detector_two_hands"]
