"""Build ``assets/mediapipe/hand_landmarker.task``: MediaPipe's palm detector and hand landmarker as a Tasks-API
model bundle, so that hand detection runs offline with the current ``mediapipe`` (numpy 2).

Why a build step: only mediapipe 0.10.14-0.10.21 ship the hand models inside the wheel; later releases download
them at run time, which must never happen here. This script takes the two ``.tflite`` files out of the 0.10.21
wheel (Apache-2.0) and writes them the way the Tasks API reads a bundle: a zip of *uncompressed* members, each
member's data aligned to 4 bytes (the runtime memory-maps them), holding

- ``hand_detector.tflite``          = ``mediapipe/modules/palm_detection/palm_detection_full.tflite``
- ``hand_landmarks_detector.tflite`` = ``mediapipe/modules/hand_landmark/hand_landmark_full.tflite``

(the layout of ``mediapipe.tasks.python.metadata.metadata_writers.model_asset_bundle_utils``). Timestamps are
fixed, so the same wheel always gives the same bytes. The wheel's licence and a provenance note go beside it.

Run: ``python scripts/build_mediapipe_task.py`` (runs ``pip download mediapipe==0.10.21 --no-deps``) or
``--wheel PATH`` for a wheel already on disk.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core_model.fileio import atomic_path  # noqa: E402

MEDIAPIPE_VERSION = "0.10.21"
MEMBERS = {  # name in the bundle -> path in the wheel
    "hand_detector.tflite": "mediapipe/modules/palm_detection/palm_detection_full.tflite",
    "hand_landmarks_detector.tflite": "mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
}
ALIGNMENT = 4
FIXED_TIME = (2024, 1, 1, 0, 0, 0)
OUT_DIR = REPO / "assets" / "mediapipe"


def download_wheel(dest: Path) -> Path:
    """``pip download mediapipe==0.10.21 --no-deps`` into ``dest``; the one wheel it saved."""
    subprocess.run([sys.executable, "-m", "pip", "download", f"mediapipe=={MEDIAPIPE_VERSION}", "--no-deps",
                    "--only-binary=:all:", "-d", str(dest), "--quiet"], check=True)
    wheels = sorted(dest.glob(f"mediapipe-{MEDIAPIPE_VERSION}-*.whl"))
    if not wheels:
        raise FileNotFoundError(f"pip download left no mediapipe-{MEDIAPIPE_VERSION} wheel in {dest}")
    return wheels[0]


def read_wheel(wheel: Path) -> tuple[dict[str, bytes], bytes]:
    """The two models (by bundle name) and the wheel's LICENSE text."""
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        missing = [p for p in MEMBERS.values() if p not in names]
        if missing:
            raise ValueError(f"wheel: {wheel.name} does not hold {missing}; use mediapipe {MEDIAPIPE_VERSION}")
        models = {bundle_name: zf.read(path) for bundle_name, path in MEMBERS.items()}
        licences = [n for n in names if n.endswith(".dist-info/LICENSE")]
        if not licences:
            raise ValueError(f"wheel: {wheel.name} has no dist-info LICENSE")
        return models, zf.read(licences[0])


def write_bundle(models: dict[str, bytes], path: Path) -> None:
    """An uncompressed zip whose member data start at multiples of ``ALIGNMENT`` (padding before each header)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED) as zf:
        for name, data in models.items():
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            header = 30 + len(name.encode()) + len(info.extra)  # the fixed local header, name, extra
            pad = -(raw.tell() + header) % ALIGNMENT
            raw.write(b"\x00" * pad)
            zf.start_dir = raw.tell()  # zipfile writes the next local header where its file pointer is
            zf.writestr(info, data)


def check_bundle(path: Path) -> None:
    """Refuse a bundle whose members are compressed or misaligned (the runtime would fail on it later)."""
    with zipfile.ZipFile(path) as zf, open(path, "rb") as raw:
        for info in zf.infolist():
            raw.seek(info.header_offset + 26)
            name_len, extra_len = int.from_bytes(raw.read(2), "little"), int.from_bytes(raw.read(2), "little")
            data_start = info.header_offset + 30 + name_len + extra_len
            if info.compress_type != zipfile.ZIP_STORED or data_start % ALIGNMENT:
                raise ValueError(f"bundle: member {info.filename} is compressed or not {ALIGNMENT}-byte aligned")


def provenance(wheel: Path, models: dict[str, bytes]) -> str:
    lines = [
        "MediaPipe hand models (hand_landmarker.task), Apache License 2.0 (see LICENSE.txt).",
        "",
        f"Source: the PyPI wheel {wheel.name} (mediapipe {MEDIAPIPE_VERSION}, (c) The MediaPipe Authors),",
        f"sha256 {hashlib.sha256(wheel.read_bytes()).hexdigest()}.",
        "Built by scripts/build_mediapipe_task.py: the two models below copied unchanged into a Tasks-API bundle.",
        "",
    ]
    for name, path in MEMBERS.items():
        lines.append(f"{name} = {path} (sha256 {hashlib.sha256(models[name]).hexdigest()})")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, default=None, help=f"a mediapipe-{MEDIAPIPE_VERSION} wheel on disk")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder (default: assets/mediapipe)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel if args.wheel is not None else download_wheel(Path(tmp))
        if not wheel.is_file():
            raise FileNotFoundError(f"--wheel: no such file {wheel}")
        models, licence = read_wheel(wheel)
        bundle = args.out / "hand_landmarker.task"
        write_bundle(models, bundle)
        check_bundle(bundle)
        with atomic_path(args.out / "LICENSE.txt") as tmp_path:
            tmp_path.write_bytes(licence)
        with atomic_path(args.out / "SOURCE.txt") as tmp_path:
            tmp_path.write_text(provenance(wheel, models))
    print(f"wrote {bundle} ({bundle.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
