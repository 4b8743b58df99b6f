"""The fused witnesses and the silhouette terms on the real clips: `interhand run --witness fused` on each clip
(kept in ``--work`` and reused), then its arrays refined with and without the silhouette terms, side by side, in
this process with ``--threads`` torch threads.

    python benchmarks/silhouette.py [--media ../shared/real-media] [--work runs/silhouette] [--threads 1]

Per clip and refinement: the refinement's seconds; the mean IoU of the hands' silhouettes (network's, refined)
with the perception's masks over the frames where both hands were reconstructed and the mask holds hands; the
share of those frames where the refined hands interpenetrate; the refined 2D jitter against MediaPipe's own
(``core_model.metrics.jitter_2d``, both normalised by MediaPipe's hand size). Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MEDIA = ROOT.parent / "shared" / "real-media"


def main() -> int:
    import torch

    from core_model.assets import asset_path
    from core_model.figures.silhouette import hand_pixels, mask_iou, silhouettes
    from core_model.metrics import jitter_2d
    from core_model.perception.model import load_perception
    from core_model.pipeline.detect import MEDIAPIPE
    from core_model.pipeline.models import faces_of, load_run_model
    from core_model.pipeline.perceive import SHIPPED
    from core_model.pipeline.run import reconstruct
    from core_model.pipeline.witness import PerceptionWitness
    from core_model.refine import RefineConfig, Refiner, refine_result_arrays
    from core_model.results import load_result

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--media", type=Path, default=MEDIA)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "silhouette")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    model, preset, _ = load_run_model(None, "auto", torch.device("cpu"))
    faces = faces_of(model.hand_model)
    witness = PerceptionWitness(load_perception(asset_path(*SHIPPED))[0])
    rows = []
    for clip in sorted(args.media.glob("*.mp4")):
        out = args.work / f"{clip.stem}.npz"
        if out.is_file():  # the network's run is kept: only the refinements are measured again
            result = load_result(out)
        else:
            start, result = time.perf_counter(), None
            with torch.no_grad():
                for event in reconstruct(clip, out, model, model_preset=preset, witness=witness):
                    result = event.result or result
            print(f"{clip.name}: network run {time.perf_counter() - start:.1f} s", flush=True)
        masks = np.asarray(result.masks)
        size = masks.shape[-1]
        both = result.valid.all(-1) & (masks > 0).any((1, 2))
        network_iou = mask_iou(silhouettes(hand_pixels(result), faces, result.bbox, size), masks)[both]
        mp = result.witness == MEDIAPIPE
        reference = np.where(mp[..., None, None], result.det_keypoints2d, np.nan)
        arrays = {k: np.asarray(v) for k, v in result.arrays().items() if not k.startswith("refined_")}
        for name, config in (("with silhouette", RefineConfig()), ("without", RefineConfig(use_silhouette=False))):
            t0 = time.perf_counter()
            fitted, _ = refine_result_arrays(arrays, Refiner(model.hand_model, config), image_size=_frame_size(clip))
            seconds = time.perf_counter() - t0
            refined = {k[len("refined_"):]: v for k, v in fitted.items()}
            shown = _with_refined(result, refined)
            iou = mask_iou(silhouettes(hand_pixels(shown, refined=True), faces, result.bbox, size), masks)[both]
            pen = np.asarray(refined["inside"]).any(-1).any(-1)[both]
            ok = np.isfinite(np.asarray(refined["keypoints2d"])).all((-1, -2)) & mp
            jitter, _ = jitter_2d(refined["keypoints2d"], ok, reference)
            jitter_mp, _ = jitter_2d(result.det_keypoints2d, ok, reference)
            rows.append([clip.name, name, str(int(both.sum())), f"{seconds:.1f}", f"{np.nanmean(network_iou):.2f}",
                         f"{np.nanmean(iou):.2f}", f"{100 * pen.mean():.1f}", f"{jitter / jitter_mp:.2f}"])
    head = ["clip", "refinement", "two-hand frames with a mask", "refine s", "IoU network / masks",
            "IoU refined / masks", "refined interpenetrate %", "refined jitter / MediaPipe's"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


def _frame_size(clip: Path) -> tuple[int, int]:
    from core_model.pipeline.video import open_source

    with open_source(clip) as source:
        return int(source.info.width), int(source.info.height)


def _with_refined(result, refined: dict):
    import dataclasses

    return dataclasses.replace(result, refined={k: np.asarray(v) for k, v in refined.items()})


if __name__ == "__main__":
    sys.exit(main())
