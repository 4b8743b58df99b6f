"""Video -> result file, end to end and per stage, with peak memory; two-hand shares on the real clips.

    python benchmarks/pipeline.py [--seconds 20] [--minutes 10] [--size 1280x720] [--real DIR] [--no-long]
                                  [--detect-workers N] [--gpu-only]

Each case runs ``core_model.pipeline.run.reconstruct`` (what ``interhand run`` runs) in a fresh process, so that
its peak resident memory (``VmHWM``) is its own; the stages time themselves (``core_model.timing``):

- a short synthetic 720p clip (``--seconds``), lite preset on CPU: frames/s end to end and per stage;
- a long synthetic 720p clip (``--minutes``, default 10): peak RSS, the memory target;
- each real clip in ``--real`` (default ``../shared/real-media`` when it exists): frames/s, and the share of frames
  with both hands reconstructed beside the share where MediaPipe alone sees two hands (and labels them one Left,
  one Right);
- with CUDA: the paper preset on the GPU, the model alone (bf16 autocast, batched windows) and end to end;
  ``--gpu-only`` runs only these (on the GPU machine, where the lite preset's ImageNet weights are not installed).

``--detect-workers``: processes for pass 1 (``interhand run --detect-workers``; default: from the usable cores).

The synthetic clips (written with OpenCV, mp4v, into a temporary folder) show skin-coloured shapes moving over a
textured background. MediaPipe finds no hand in them, so the run uses a manual region (``--roi``) and every frame
goes through every stage: decode (twice: detection pass and crop pass), detect (MediaPipe on every frame, which
runs its palm detector on every frame when it tracks no hand: its dearest case), crop, model (frame encoder once
per frame and the temporal part per window), blend, hand model (posing the blended parameters), penetration, write.
Times per stage are seconds summed over the run, shown as ms per frame and as the frames/s the stage alone allows;
decode and crop run in a background thread (``pipeline.prefetch``) and overlap the other stages, so the stages
add up to more than the end-to-end time. With detection in worker processes, pass 1's decode and detect are the
workers' seconds summed (processor time across them, not wall time).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

STARTED = time.perf_counter()  # a worker's start-up (imports, model) counts from here
STAGES = ("decode", "detect", "crop", "model", "blend", "hand model", "penetration", "write")
BACKGROUND = ("decode", "crop")  # run in the prefetch thread, overlapping the others
DEFAULT_REAL = Path(__file__).resolve().parents[2] / "shared" / "real-media"



def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec from the parent."""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024

def write_clip(path: Path, seconds: float, size: tuple[int, int], fps: float = 30.0) -> Path:
    """A synthetic clip: two skin-coloured hand-sized blobs with fingers moving over a textured background."""
    import cv2

    width, height = size
    rng = np.random.default_rng(0)
    texture = cv2.resize(rng.integers(40, 200, (height // 8, width // 8, 3), np.uint8), (width, height),
                         interpolation=cv2.INTER_CUBIC)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write mp4v video to {path}")
    for i in range(round(seconds * fps)):
        frame = np.roll(texture, 3 * i, axis=1)
        for hand, sign in ((0, -1), (1, 1)):
            cx = width // 2 + sign * (width // 10 + int(20 * np.sin(i / 15 + hand)))
            cy = height // 2 + int(15 * np.cos(i / 20))
            cv2.ellipse(frame, (cx, cy), (width // 22, height // 10), 0, 0, 360, (120, 160, 210), -1)
            for k in range(4):
                angle = -1.2 + 0.5 * k + 0.2 * np.sin(i / 10 + k)
                tip = (cx + int(sign * 0.0 + np.sin(angle) * height / 5), cy - int(np.cos(angle) * height / 5))
                cv2.line(frame, (cx, cy), tip, (110, 150, 205), max(4, width // 90))
        writer.write(frame)
    writer.release()
    return path


def roi_for(size: tuple[int, int]) -> str:
    """The region around the synthetic hands."""
    width, height = size
    side = int(0.6 * height)
    return f"{width // 2 - side // 2},{height // 2 - side // 2},{side},{side}"


# ------------------------------------------------------------------------------------------------ worker side


def run_case(case: dict) -> dict:
    """One reconstruction in this process; what it measured."""
    import torch

    from core_model.handmodel.registry import load_hand_model
    from core_model.network import STCNet, STCNetConfig
    from core_model.pipeline.region import parse_roi
    from core_model.pipeline.run import cpu_threads, reconstruct
    from core_model.timing import StageTimer

    device = torch.device(case["device"])
    if device.type == "cpu":
        torch.set_num_threads(case.get("threads") or cpu_threads())  # as interhand run does
    model = STCNet(STCNetConfig.from_preset(case["preset"]), load_hand_model("openhand")).to(device).eval()
    torch.set_grad_enabled(False)
    autocast = torch.bfloat16 if case.get("bf16") else None
    timer = StageTimer()
    loaded = time.perf_counter()
    result = None
    for event in reconstruct(case["video"], case["output"], model, model_preset=case["preset"],
                             roi=parse_roi(case["roi"]) if case.get("roi") else None, batch=case["batch"],
                             device=device, autocast=autocast, timer=timer,
                             detect_workers=case.get("detect_workers")):
        if event.stage == "done":
            result = event.result
    if device.type == "cuda":
        torch.cuda.synchronize()
    end = time.perf_counter()
    shares = result.meta.extra.get("region_shares", {})
    return {"frames": result.num_frames, "startup_s": loaded - STARTED, "run_s": end - loaded,
            "stages": timer.seconds, "rss_mb": peak_rss_mb(),
            "two_reconstructed": float(np.asarray(result.valid).all(axis=1).mean()), "shares": shares,
            "torch_threads": torch.get_num_threads(), "output_mb": Path(case["output"]).stat().st_size / 2**20}


def model_alone(preset: str, batch: int, device: str = "cuda", steps: int = 20) -> dict:
    """The network alone: ``batch`` windows of T frames, bf16 autocast, frames/s (``STCNet.forward`` on every
    window slot, and encoding once per frame as the pipeline does plus the per-window temporal part)."""
    import torch

    from core_model.handmodel.registry import load_hand_model
    from core_model.network import STCNet, STCNetConfig

    dev = torch.device(device)
    model = STCNet(STCNetConfig.from_preset(preset), load_hand_model("openhand")).to(dev).eval()
    T, S = model.config.frames, model.config.input_size
    lm = torch.zeros(batch, T, 2, 21, 3, device=dev) if model.config.landmarks else None
    crops = torch.rand(batch, T, 3, S, S, device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    out = {}
    with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16):
        for name, call in (("forward", lambda: model(crops, landmarks=lm)),
                           ("encode+head", lambda: model.decode_window(
                               model.encode_frames(crops.flatten(0, 1)).windows(batch, T), lm))):
            call()
            sync()
            start = time.perf_counter()
            for _ in range(steps):
                call()
            sync()
            out[name] = steps * batch * T / (time.perf_counter() - start)
    return out


def worker(argv: list[str]) -> int:
    case = json.loads(argv[0])
    result = (model_alone(case["preset"], case["batch"], case["device"], case.get("steps", 20))
              if case.get("model_alone") else run_case(case))
    print("RESULT " + json.dumps(result))
    return 0


# ------------------------------------------------------------------------------------------------ parent side


def spawn(case: dict, script: str = __file__) -> dict:
    """Run one case in a fresh process (its own peak RSS): ``script --worker CASE``, which prints ``RESULT`` and
    its JSON (``benchmarks/detect_parallel.py`` runs its cases the same way)."""
    paths = [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]  # keep the caller's too
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p))
    proc = subprocess.run([sys.executable, script, "--worker", json.dumps(case)], capture_output=True, text=True,
                          env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"case {case} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def stage_rows(name: str, r: dict) -> list[str]:
    n = r["frames"]
    rows = [f"| {name} | end to end | {1000 * r['run_s'] / n:.1f} | {n / r['run_s']:.1f} |"]
    for stage in STAGES:
        seconds = r["stages"].get(stage, 0.0)
        rows.append(f"| {name} | {stage} | {1000 * seconds / n:.1f} | "
                    f"{n / seconds if seconds else float('inf'):.1f} |")
    other = r["run_s"] - sum(v for k, v in r["stages"].items() if k not in BACKGROUND)
    rows.append(f"| {name} | main thread waiting for frames, events, bookkeeping | {1000 * other / n:.1f} | |")
    return rows


def machine() -> str:
    import torch

    load = os.getloadavg()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.node()}: {os.cpu_count()} cores ({_cpu_name()}), {gpu}, torch {torch.__version__}; "
            f"load average at start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return worker(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the short synthetic clip")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the long synthetic clip (memory)")
    parser.add_argument("--size", default="1280x720", help="synthetic clip size WxH")
    parser.add_argument("--batch", type=int, default=4, help="windows per batch on the CPU")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads on the CPU (default: interhand run's, the cores but one)")
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL if DEFAULT_REAL.is_dir() else None,
                        help="folder of real clips (*.mp4) to run and report two-hand shares on")
    parser.add_argument("--no-long", action="store_true", help="skip the long clip")
    parser.add_argument("--detect-workers", type=int, default=None,
                        help="processes for hand detection (default: interhand run's, from the usable cores)")
    parser.add_argument("--gpu-only", action="store_true",
                        help="only the paper preset on CUDA (fails without CUDA)")
    parser.add_argument("--paper-device", default="cuda",
                        help="device of the paper-preset cases (cpu: to try them here, with a small --paper-batch)")
    parser.add_argument("--paper-batch", type=int, default=32, help="windows per batch of the paper-preset cases")
    parser.add_argument("--paper-steps", type=int, default=20, help="timed batches of the model alone")
    args = parser.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    import torch

    print(machine(), flush=True)
    paper_here = args.paper_device == "cpu" or torch.cuda.is_available()
    if args.gpu_only and not paper_here:
        print("--gpu-only: torch sees no CUDA device")
        return 1
    lite = {"preset": "lite", "device": "cpu", "batch": args.batch, "threads": args.threads,
            "detect_workers": args.detect_workers}
    with tempfile.TemporaryDirectory(prefix="interhand-bench-") as tmp:
        tmp = Path(tmp)
        short = write_clip(tmp / "short.mp4", args.seconds, size)
        if args.gpu_only:
            args.real, args.no_long = None, True
        r = None if args.gpu_only else spawn({**lite, "video": str(short), "output": str(tmp / "short.npz"),
                                              "roi": roi_for(size)})
        if r is not None:
            print(f"\n### Lite preset, CPU, synthetic {size[0]}x{size[1]} clip, {r['frames']} frames (manual region)\n")
            print(f"startup (imports, model) {r['startup_s']:.1f} s; peak RSS {r['rss_mb']:.0f} MB; torch threads "
                  f"{r['torch_threads']}\n")
            print("| clip | stage | ms/frame | frames/s |\n| --- | --- | --- | --- |")
            print("\n".join(stage_rows("synthetic 720p", r)), flush=True)

        if args.real is not None and not args.real.is_dir():
            print(f"\n(no real clips: {args.real} is not a folder)")
        elif args.real is not None:
            print(f"\n### Real clips ({args.real}), lite preset, CPU, detected regions\n")
            print("| clip | frames | two hands reconstructed | MediaPipe alone: two hands | MediaPipe alone: one Left "
                  "+ one Right | end to end (frames/s) | peak RSS (MB) |\n| --- | --- | --- | --- | --- | --- | --- |")
            for clip in sorted(args.real.glob("*.mp4")):
                r = spawn({**lite, "video": str(clip), "output": str(tmp / f"{clip.stem}.npz")})
                s = r["shares"]
                print(f"| {clip.name} | {r['frames']} | {r['two_reconstructed']:.1%} | "
                      f"{s.get('detector_two_hands', float('nan')):.1%} | "
                      f"{s.get('detector_left_right', float('nan')):.1%} | {r['frames'] / r['run_s']:.1f} | "
                      f"{r['rss_mb']:.0f} |", flush=True)

        if paper_here:
            paper = {"preset": "paper", "device": args.paper_device, "batch": args.paper_batch, "bf16": True,
                     "detect_workers": args.detect_workers}
            alone = spawn({**paper, "model_alone": True, "steps": args.paper_steps})
            r = spawn({**paper, "video": str(short), "output": str(tmp / "paper.npz"), "roi": roi_for(size)})
            print(f"\n### Paper preset, {args.paper_device}, bf16 autocast, {args.paper_batch} windows per batch, "
                  f"synthetic {size[0]}x{size[1]} clip of {r['frames']} frames (manual region), detection "
                  f"workers: {args.detect_workers or 'default'}\n")
            print(f"model alone: {alone['forward']:.0f} frames/s (STCNet.forward, every window slot), "
                  f"{alone['encode+head']:.0f} frames/s (encoder once per frame + temporal part)\n")
            print("| clip | stage | ms/frame | frames/s |\n| --- | --- | --- | --- |")
            print("\n".join(stage_rows(f"synthetic 720p, paper on {args.paper_device}", r)), flush=True)

        if not args.no_long:
            start = time.perf_counter()
            long = write_clip(tmp / "long.mp4", 60 * args.minutes, size)
            written = time.perf_counter() - start
            short.unlink()
            r = spawn({**lite, "video": str(long), "output": str(tmp / "long.npz"), "roi": roi_for(size)})
            print(f"\n### Long clip: {args.minutes:g} minutes of synthetic {size[0]}x{size[1]}, {r['frames']} frames "
                  f"(written in {written:.0f} s)\n")
            print(f"peak RSS {r['rss_mb']:.0f} MB; end to end {r['frames'] / r['run_s']:.1f} frames/s "
                  f"({r['run_s'] / 60:.1f} min); result file {r['output_mb']:.0f} MB\n")
            print("| clip | stage | ms/frame | frames/s |\n| --- | --- | --- | --- |")
            print("\n".join(stage_rows(f"synthetic {args.minutes:g} min", r)), flush=True)
    load = os.getloadavg()
    print(f"\nload average at the end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
