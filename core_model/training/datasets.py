"""The data a run reads: dataset specs (``PATH`` or ``KIND:PATH``) turned into one window dataset over all their
sequences, and a sampler that makes every draw a function of (seed, epoch, item).

Why seed per item: the window a step sees, and its augmentation, then do not depend on the number of loader
workers, on the number of processes, or on whether the run was interrupted and resumed, so a resumed run
continues exactly as the uninterrupted one would have.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler

from core_model.data.windows import Augmentation, SequenceAnnotations, WindowDataset

KINDS = ("synthetic", "interhand", "hic")


@dataclasses.dataclass(frozen=True)
class DataSource:
    """One dataset: kind (``synthetic``, ``interhand`` or ``hic``), its root, and for InterHand2.6M the split."""

    kind: str
    root: Path
    split: str = "train"


def detect_kind(root: Path) -> str:
    """The kind of the dataset at ``root``: ``dataset.json`` (synthetic), ``HIC.json`` (HIC), or InterHand2.6M's
    ``annotations/`` folder."""
    if (root / "dataset.json").is_file():
        return "synthetic"
    if (root / "HIC.json").is_file():
        return "hic"
    if (root / "annotations").is_dir() or any(root.glob("InterHand2.6M_*_data.json")):
        return "interhand"
    raise ValueError(f"data: cannot tell what dataset {root} holds (no dataset.json, HIC.json or InterHand2.6M "
                     f"annotations/); name it as KIND:PATH with KIND one of {KINDS}")


def parse_source(spec: str, split: str = "train") -> DataSource:
    """``PATH`` or ``KIND:PATH`` (e.g. ``interhand:/data/InterHand2.6M``); ``split`` applies to InterHand2.6M."""
    kind, sep, rest = spec.partition(":")
    if sep and kind in KINDS:
        root = Path(rest).expanduser()
    else:
        kind, root = "", Path(spec).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"data: no such folder {root}")
    return DataSource(kind or detect_kind(root), root, split)


def load_sequences(source: DataSource, hand_model) -> list[SequenceAnnotations]:
    """The annotated sequences of one source (synthetic: the set at ``root``, whatever its split; HIC: the
    interacting sequences 01-07)."""
    if source.kind == "synthetic":
        from core_model.data.synthetic import load_synthetic_sequences

        return load_synthetic_sequences(source.root, hand_model)
    if source.kind == "interhand":
        from core_model.data.interhand import load_interhand_sequences

        return load_interhand_sequences(source.root, source.split, hand_model)
    if source.kind == "hic":
        from core_model.data.hic import load_hic_sequences

        return load_hic_sequences(source.root, hand_model)
    raise ValueError(f"data: unknown kind {source.kind!r}; expected one of {KINDS}")


def build_windows(specs: Sequence[str], hand_model, *, window: int, crop_size: int, stride: int | None = None,
                  augmentation: Augmentation | None = None, split: str = "train",
                  max_sequences: int | None = None) -> WindowDataset:
    """One :class:`WindowDataset` over the sequences of every spec, in the order given."""
    sequences: list[SequenceAnnotations] = []
    for spec in specs:
        source = parse_source(spec, split)
        found = load_sequences(source, hand_model)
        if not found:
            raise ValueError(f"data: {spec} holds no usable sequence ({source.kind}, split {source.split!r})")
        sequences += found
    if max_sequences is not None:
        sequences = sequences[:max_sequences]
    dataset = WindowDataset(sequences, hand_model, window=window, stride=stride, crop_size=crop_size,
                            augmentation=augmentation)
    if len(dataset) == 0:
        raise ValueError(f"data: {list(specs)} give no window of {window} frames")
    return dataset


def item_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for item ``index`` of ``epoch`` (SplitMix64-style mixing, stable across platforms)."""
    x = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB) & (2 ** 64 - 1)
    x ^= x >> 31
    x = (x * 0xBF58476D1CE4E5B9) & (2 ** 64 - 1)
    x ^= x >> 29
    return x >> 1


class SeededWindows(Dataset):
    """``dataset`` indexed by ``(epoch, index)``: each item's random draws (augmentation) come from
    :func:`item_seed`, inside a forked RNG so the caller's generator is untouched."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, index = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(item_seed(self.seed, epoch, index))
            return self.dataset[index]


class EpochSampler(Sampler):
    """``(epoch, index)`` keys for :class:`SeededWindows`: this process's share of a shuffled epoch
    (``DistributedSampler``, shuffled from the seed and epoch, the same tail dropped on every process), starting
    ``skip`` items in (a resumed epoch)."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int) -> None:
        self.base = DistributedSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed,
                                       drop_last=True)
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip
        self.base.set_epoch(epoch)

    def __len__(self) -> int:
        return max(0, len(self.base) - self.skip)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for position, index in enumerate(self.base):
            if position >= self.skip:
                yield self.epoch, int(index)
