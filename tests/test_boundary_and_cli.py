"""The core stays Qt-free, and the command line works headless."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    """Qt-free core, the layers from the app down, evaluation and training apart from the video front end."""
    result = subprocess.run([str(Path(sys.executable).with_name("lint-imports")), str(REPO / "pyproject.toml")],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    for contract in ("core_model is Qt-free and never imports the viewer KEPT",
                     "Layers from the app down to geometry and file I/O KEPT",
                     "Evaluation and training never import the video front end KEPT"):
        assert contract in result.stdout, result.stdout
    assert "3 kept, 0 broken" in result.stdout


def test_importing_all_of_core_model_loads_no_qt():
    code = ("import pkgutil, importlib, sys, core_model\n"
            "for m in pkgutil.walk_packages(core_model.__path__, 'core_model.'):\n"
            "    importlib.import_module(m.name)\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'viewer', 'shiboken6')]\n"
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def _interhand(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core_model.cli", *args], capture_output=True, text=True,
                          cwd=REPO, **kwargs)


def test_info_names_versions_device_hand_model_and_mano_location():
    result = _interhand("info")
    assert result.returncode == 0, result.stderr
    for needle in ("torch", "smplx", "device", "cpu", "hand model", "OpenHand", "MANO directory", "MANO imported",
                   "shipped model          stcnet_lite_landmarks_synth.pt (lite-landmarks, input 128, "
                   "hand model OpenHand"):
        assert needle in result.stdout


def test_mano_import_of_a_missing_folder_fails_with_a_message_not_a_traceback(tmp_path):
    result = _interhand("mano-import", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert "not a directory" in result.stderr and "Traceback" not in result.stderr


def test_hand_pose_figure_is_rendered_headless(tmp_path):
    from PIL import Image

    out = tmp_path / "poses.png"
    result = _interhand("figures", "hand-poses", "--out", str(out), "--poses", "open", "fist")
    assert result.returncode == 0, result.stderr
    image = np.asarray(Image.open(out))
    assert image.shape[0] >= 400 and image.shape[1] >= 800
    # Both hand colours are present (blue right, orange left) on a white background.
    pixels = image[..., :3].reshape(-1, 3).astype(int)
    blue = (pixels[:, 2] > pixels[:, 0] + 40).mean()
    orange = (pixels[:, 0] > pixels[:, 2] + 60).mean()
    assert blue > 0.02 and orange > 0.02
    assert np.mean(pixels.min(1) > 240) > 0.4


def _studio(env_changes: dict[str, str | None], tmp_path: Path) -> subprocess.CompletedProcess:
    """``interhand-studio`` (the installed entry point when there is one, else its function) with this checkout's
    packages first on the path and ``env_changes`` made (None: unset)."""
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env.update({k: v for k, v in env_changes.items() if v is not None})
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env["HOME"] = str(tmp_path)  # no user settings read or written
    script = Path(sys.executable).with_name("interhand-studio")
    command = [str(script)] if script.is_file() else [sys.executable, "-c",
                                                      "import sys; from viewer.app import main; sys.exit(main())"]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=120)


def test_studio_without_a_display_says_so_and_what_to_run(tmp_path):
    """No DISPLAY (an SSH session, a container): a plain message and exit status 2, not Qt's abort (134) with its
    hint about libxcb-cursor0; the same where DISPLAY names an X server that is not there."""
    from viewer.app import NO_DISPLAY_EXIT

    for changes, reason in (({}, "no display was found (DISPLAY is not set and neither is WAYLAND_DISPLAY)"),
                            ({"DISPLAY": ":187"}, "the display :187 could not be reached")):
        result = _studio(changes, tmp_path)
        assert result.returncode == NO_DISPLAY_EXIT == 2, result.stderr
        assert f"interhand-studio: cannot open a window: {reason}" in result.stderr
        assert "xvfb-run -a interhand-studio" in result.stderr and "interhand run VIDEO" in result.stderr
        assert "xcb-cursor" not in result.stderr and "Traceback" not in result.stderr


def test_missing_display_reads_the_environment():
    from viewer.app import missing_display

    assert missing_display({}, "linux").startswith("no display was found")
    assert missing_display({"DISPLAY": ":0"}, "linux") is None
    assert missing_display({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    assert missing_display({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None  # screenshots, tests
    assert missing_display({"QT_QPA_PLATFORM": "wayland", "DISPLAY": ":0"}, "linux").startswith("QT_QPA_PLATFORM")
    assert missing_display({"QT_QPA_PLATFORM": "xcb", "WAYLAND_DISPLAY": "w"}, "linux").startswith("no display")
    assert missing_display({}, "win32") is None and missing_display({}, "darwin") is None
