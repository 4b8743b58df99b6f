"""Training with a fully frozen frame encoder from cached features (``interhand train --freeze-stride 32
--feature-cache PATH``).

Why: with the encoder frozen at its ImageNet weights (what a CPU can afford), its forward pass is still most of a
training step, and it gives the same features for a frame every epoch. The features of every window (centred,
unaugmented crops) are computed once, stored in one file that every run over the same data and encoder shares
(the ablation's rows), and read each step instead of decoding, cropping and encoding ten frames per window.

What changes against image training: no image augmentation (the features are those of the centred crop; scale,
shift, rotation, flip and colour jitter are off). What stays fresh every step: the simulated detector's landmarks
(:mod:`core_model.data.detector_sim`), drawn anew per item as with augmentation, which is what a landmark-guided
model learns from. The file is keyed by the encoder's weights, the crop size and the windows, so a cache built for
other data or another encoder is rebuilt, never silently reused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from core_model.data.windows import AugmentParams, Window, WindowDataset, detector_rng_of, item_seed_from_torch
from core_model.fileio import atomic_path

log = logging.getLogger(__name__)

FORMAT = "interhand-feature-cache"
FORMAT_VERSION = 1
CHUNK = 16  # windows per encoder pass


def cache_key(encoder: torch.nn.Module, dataset: WindowDataset) -> str:
    """SHA-256 of what the cached features depend on: the encoder's weights and statistics, the crop size and
    margin, and every window (its sequence's first frame file, frame count, start)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    windows = [(str(dataset.sequences[s].image_paths[0]), len(dataset.sequences[s]), start)
               for s, start in dataset.index]
    digest.update(json.dumps({"crop": dataset.crop_size, "margin": dataset.margin, "window": dataset.window,
                              "windows": windows}).encode())
    return digest.hexdigest()


@torch.no_grad()
def encode_windows(encoder: torch.nn.Module, dataset: WindowDataset, device: torch.device
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """F_1 [N, T, C1, H1, W1] (fp16) and F_2 averaged over its map [N, T, C2] (fp16) of every window's centred
    crops, in the encoder's eval mode (batch norm with its running statistics, as when frozen)."""
    was_training = encoder.training
    encoder.eval()
    f1s, g2s = [], []
    began = time.perf_counter()
    try:
        for k in range(0, len(dataset), CHUNK):
            images = torch.stack([dataset.build(*dataset.index[i], AugmentParams()).images
                                  for i in range(k, min(k + CHUNK, len(dataset)))]).to(device)
            leading = images.shape[:2]
            f1, f2 = encoder(images.flatten(0, 1).contiguous(memory_format=torch.channels_last))
            f1s.append(f1.half().unflatten(0, leading).cpu())
            g2s.append(f2.mean((2, 3)).half().unflatten(0, leading).cpu())
            if k and k % (40 * CHUNK) == 0:
                log.info("feature cache: %d / %d windows encoded (%.0f s)", k, len(dataset),
                         time.perf_counter() - began)
    finally:
        encoder.train(was_training)
    return torch.cat(f1s), torch.cat(g2s)


def load_or_build(path: str | Path, encoder: torch.nn.Module, dataset: WindowDataset, device: torch.device
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The cached features of ``dataset`` under ``encoder`` from ``path``, encoding and writing them (atomically)
    when the file is absent or was built for other windows or another encoder."""
    path = Path(path)
    key = cache_key(encoder, dataset)
    if path.is_file():
        data = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"feature_cache: {path} is not a feature cache written by interhand train")
        if data.get("format_version") == FORMAT_VERSION and data.get("key") == key:
            log.info("feature cache: %d windows from %s", len(data["g2"]), path)
            return data["f1"], data["g2"]
        log.warning("feature cache: %s was built for other windows or another encoder; rebuilding it", path)
    began = time.perf_counter()
    f1, g2 = encode_windows(encoder, dataset, device)
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, "key": key, "f1": f1, "g2": g2}, tmp)
    log.info("feature cache: %d windows encoded in %.0f s -> %s (%.0f MB)", len(g2), time.perf_counter() - began,
             path, path.stat().st_size / 2 ** 20)
    return f1, g2


class CachedWindows(Dataset):
    """``dataset``'s windows without their images, with their cached features: items as ``WindowDataset`` gives
    them, less ``images``, plus ``f1``, ``g2`` and ``crop_size``. The simulated detector draws afresh per item
    from torch's generator (seeded per item by :class:`~core_model.training.datasets.SeededWindows`)."""

    def __init__(self, dataset: WindowDataset, f1: torch.Tensor, g2: torch.Tensor) -> None:
        if len(f1) != len(dataset) or len(g2) != len(dataset):
            raise ValueError(f"f1, g2: {len(f1)} and {len(g2)} cached windows for a dataset of {len(dataset)}")
        self.dataset = dataset
        self.f1 = f1
        self.g2 = g2

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        s, start = self.dataset.index[item]
        window = self.dataset.build(s, start, AugmentParams(), detector_rng_of(item_seed_from_torch()),
                                    load_images=False)
        out = window.to_dict()
        del out["images"]
        out["f1"], out["g2"] = self.f1[item], self.g2[item]
        out["crop_size"] = torch.tensor(self.dataset.crop_size)
        return out


def collate_cached(items: Sequence[dict[str, torch.Tensor]]) -> tuple[Window, tuple[torch.Tensor, torch.Tensor]]:
    """Stack cached items into (a batched :class:`Window` whose ``images`` is a zero placeholder of the crops'
    shape, never materialised; (F_1 [B, T, C1, H1, W1], F_2 [B, T, C2, 1, 1]) in float32) for ``STCNet(None,
    features=...)``."""
    batch = torch.utils.data.default_collate(list(items))
    f1, g2 = batch.pop("f1").float(), batch.pop("g2").float()
    side = int(batch.pop("crop_size")[0])
    batch["images"] = torch.zeros(()).expand(*g2.shape[:2], 3, side, side)
    return Window.from_dict(batch), (f1, g2[..., None, None])
