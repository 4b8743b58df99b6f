"""Make ``.gpu/``: what ``scripts/gpu_check.sh`` needs on the GPU machine beyond the working tree, and check that
the two together fit the 64 MiB that travel there.

    python scripts/gpu_bundle.py [--media ../shared/real-media | --no-media] [--force] [--no-verify]

That machine's ``python3`` (3.12) has torch with CUDA, numpy, scipy, OpenCV (headless), matplotlib, pillow,
tensorboard and pytest, and no package registry. What the CUDA tests and the GPU benchmarks import beyond those
comes as wheels, installed there offline (``pip install --no-index``): smplx, roma, trimesh and platformdirs (pure
Python, under 1 MB together) and mediapipe, whose 43 MB wheel would leave too little room beside the working tree
(about 32 MiB, 24 MB of it ``assets/``): its native library is stripped of its symbol table (``strip
--strip-unneeded``: 128 to 98 MB; the dynamic symbols it is loaded by stay, and the detector was checked to give
the same landmarks), the wheel is rebuilt with that file's RECORD line renewed and xz-compressed. VTK cannot come
(hundreds of MB): nothing run there imports it, and the synthetic training set the CUDA training test reads is
rendered here. Versions are the ones installed here, so that the GPU machine runs what the tests here ran.

``.gpu/`` (ignored by git; name it in the device call's ``carry``):

- ``wheels/``: the wheels (``mediapipe-*.whl.xz``: decompress before installing; ``gpu_check.sh`` does);
- ``debs/``: libegl1, libgles2, libglvnd0 (Debian 12, amd64): ``libmediapipe.so`` links libEGL and libGLESv2,
  which a bare CUDA image may lack (``gpu_check.sh`` unpacks them into /tmp only then);
- ``synth/``: ``tests/test_train.py``'s tiny synthetic set (2 sequences of 12 frames at 96 px, seed 21, OpenHand),
  which ``tests/test_cuda.py`` reads through ``INTERHAND_TEST_SYNTH``;
- ``media/``: the real clips (``--media``, default ``../shared/real-media`` when present) for
  ``benchmarks/detect_parallel.py``: local test material, never committed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.metadata
import io
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 64 * 2**20
SMALL = ("smplx", "roma", "trimesh", "platformdirs")
DEBS = ("libegl1", "libgles2", "libglvnd0")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")
NATIVE = "mediapipe/tasks/c/libmediapipe.so"


def download(names: list[str], folder: Path) -> None:
    """cp312 manylinux x86_64 wheels of ``names`` (NAME==VERSION), no dependencies."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version",
               "3.12", "--implementation", "cp", "-d", str(folder), "-q"]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    subprocess.run(command + names, check=True)


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def slim_mediapipe(wheel: Path, out: Path) -> Path:
    """``wheel`` rebuilt with its native library stripped, stored (not deflated: xz compresses the whole better),
    xz-compressed to ``out/<wheel name>.xz``."""
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as source:
        native = Path(tmp) / "lib.so"
        native.write_bytes(source.read(NATIVE))
        subprocess.run(["strip", "--strip-unneeded", str(native)], check=True)
        stripped = native.read_bytes()
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as target:
            for info in source.infolist():
                data = stripped if info.filename == NATIVE else source.read(info)
                if info.filename.endswith(".dist-info/RECORD"):
                    lines = [f"{NATIVE},{record_hash(stripped)},{len(stripped)}" if line.startswith(NATIVE + ",")
                             else line for line in data.decode().splitlines()]
                    data = ("\n".join(lines) + "\n").encode()
                info.compress_type = zipfile.ZIP_STORED
                target.writestr(info, data)
    path = out / (wheel.name + ".xz")
    path.write_bytes(lzma.compress(buffer.getvalue(), preset=9))
    return path


def verify_mediapipe(packed: Path, clip: Path | None) -> None:
    """Install the slimmed wheel into a temporary folder here and detect hands on one frame with it, beside the
    installed mediapipe: the same landmarks."""
    with tempfile.TemporaryDirectory() as tmp:
        wheel = Path(tmp) / packed.name[:-3]
        wheel.write_bytes(lzma.decompress(packed.read_bytes()))
        site = Path(tmp) / "site"
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--target", str(site), str(wheel)], check=True)
        probe = ("import sys, numpy as np; from core_model.pipeline.detect import MediaPipeHandDetector; "
                 "from core_model.pipeline.video import open_source; import mediapipe; "
                 "s = open_source(sys.argv[1]); f = s.read(min(60, s.info.frame_count - 1)); "
                 "d = MediaPipeHandDetector(); h = d.detect(f, 0); d.close(); "
                 "print(mediapipe.__file__, len(h), np.round(h.keypoints.sum(), 2))")
        video = str(clip or ROOT / "assets" / "demo" / "demo.mp4")
        answers = []
        for path in (str(site), ""):
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (path, str(ROOT)) if p))
            done = subprocess.run([sys.executable, "-c", probe, video], capture_output=True, text=True, env=env)
            if done.returncode:
                raise RuntimeError(f"the slimmed mediapipe does not work:\n{done.stderr[-2000:]}")
            answers.append(done.stdout.split())
        if not answers[0][0].startswith(str(site)):
            raise RuntimeError(f"the check imported {answers[0][0]}, not the slimmed wheel")
        if answers[0][1:] != answers[1][1:]:
            raise RuntimeError(f"the slimmed mediapipe found {answers[0][1:]}, the installed one {answers[1][1:]}")
        print(f"  slimmed mediapipe checked: the same hands as the installed one ({answers[0][1]} hands)")


def travelling_bytes() -> int:
    """Bytes of the working tree that travel: tracked files and untracked ones git does not ignore."""
    names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    return sum((ROOT / n).stat().st_size for n in names if n and (ROOT / n).is_file())


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_media = ROOT.parent / "shared" / "real-media"
    parser.add_argument("--out", type=Path, default=ROOT / ".gpu")
    parser.add_argument("--media", type=Path, default=default_media if default_media.is_dir() else None)
    parser.add_argument("--no-media", action="store_true", help="leave the real clips out")
    parser.add_argument("--force", action="store_true", help="rebuild what is there already")
    parser.add_argument("--no-verify", action="store_true", help="skip checking the slimmed mediapipe here")
    args = parser.parse_args(argv)
    out = args.out
    if args.force and out.exists():
        shutil.rmtree(out)
    (out / "wheels").mkdir(parents=True, exist_ok=True)

    versions = {name: importlib.metadata.version(name) for name in (*SMALL, "mediapipe")}
    print("wheels:", ", ".join(f"{k} {v}" for k, v in versions.items()))
    wanted = {name: f"{name}=={version}" for name, version in versions.items()}
    have = {p.name.split("-")[0].lower(): p for p in (out / "wheels").iterdir()}
    for name in list(wanted):
        found = have.get(name.replace("-", "_"))
        if found is not None and f"-{versions[name]}-" in found.name:
            del wanted[name]
        elif found is not None:
            found.unlink()  # another version
    if wanted:
        with tempfile.TemporaryDirectory() as tmp:
            download(list(wanted.values()), Path(tmp))
            for wheel in Path(tmp).glob("*.whl"):
                if wheel.name.startswith("mediapipe-"):
                    print(f"  slimming {wheel.name} ({wheel.stat().st_size / 2**20:.1f} MiB) ...", flush=True)
                    packed = slim_mediapipe(wheel, out / "wheels")
                    print(f"  -> {packed.name} ({packed.stat().st_size / 2**20:.1f} MiB)")
                    if not args.no_verify:
                        clip = args.media / "two_hands_rock_sign.mp4" if args.media else None
                        verify_mediapipe(packed, clip if clip and clip.is_file() else None)
                else:
                    shutil.copy2(wheel, out / "wheels" / wheel.name)

    debs = out / "debs"
    if not any(debs.glob("*.deb")):
        debs.mkdir(exist_ok=True)
        done = subprocess.run(["apt-get", "download", *DEBS], cwd=debs, capture_output=True, text=True)
        if done.returncode:
            print(f"warning: apt-get download {' '.join(DEBS)} failed; gpu_check.sh will rely on the machine's own "
                  f"libEGL:\n{done.stderr[-500:]}")

    synth = out / "synth"
    if not (synth / "dataset.json").is_file():
        sys.path.insert(0, str(ROOT))
        from core_model.data.synth import generate_dataset

        if synth.exists():
            shutil.rmtree(synth)
        generate_dataset(synth, 2, 12, 96, seed=21, split="train", hand_model="openhand")  # as tests/test_train.py

    media = out / "media"
    if args.no_media or args.media is None:
        if media.exists():
            shutil.rmtree(media)
    else:
        media.mkdir(exist_ok=True)
        for clip in sorted(args.media.glob("*.mp4")):
            if not (media / clip.name).is_file():
                shutil.copy2(clip, media / clip.name)

    tree, bundle = travelling_bytes(), folder_bytes(out)
    print("\n| part | MiB |\n| --- | --- |")
    print(f"| working tree (tracked and untracked-not-ignored files) | {tree / 2**20:.1f} |")
    for part in sorted(p for p in out.iterdir() if p.is_dir()):
        print(f"| {out.name}/{part.name} | {folder_bytes(part) / 2**20:.1f} |")
    print(f"| together | {(tree + bundle) / 2**20:.1f} of {LIMIT / 2**20:.0f} |")
    if tree + bundle > LIMIT:
        print(f"too large: {(tree + bundle - LIMIT) / 2**20:.1f} MiB over; try --no-media")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
