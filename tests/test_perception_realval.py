"""The hand-labelled real validation set: it loads, its labels are sane, and scoring counts what it should."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core_model.perception.realval import (
    DEFAULT_FOLDER,
    FrameReader,
    LabelledFrame,
    load_validation_set,
    score_frame,
    summarise,
)

MEDIA = DEFAULT_FOLDER.parents[2] / "shared" / "real-media"


@pytest.fixture(scope="module")
def dataset():
    return load_validation_set()


def test_the_set_loads_with_mostly_touching_frames(dataset):
    assert len(dataset.frames) >= 24
    assert sum(f.touching for f in dataset.frames) > len(dataset.frames) / 2
    assert sum(f.has_mask for f in dataset.frames) >= 6
    for f in dataset.frames:
        assert f.id == f"{f.source}_{f.frame:05d}"
        labelled = np.isfinite(f.keypoints).all(-1)
        assert not labelled[~f.present].any()
        # a labelled hand is hand-sized: its keypoints span 10 to 1000 pixels
        for h in np.flatnonzero(labelled.sum(-1) >= 3):
            span = np.ptp(f.keypoints[h][labelled[h]], axis=0).max()
            assert 10 < span < 1000, (f.id, h, span)


def test_scoring_counts_hits_misses_and_swaps(dataset):
    label = next(f for f in dataset.frames if f.present.all() and np.isfinite(f.keypoints).all(-1).sum() >= 20)
    both = np.ones(2, bool)
    exact = score_frame(label, label.keypoints, both)
    assert exact.correct.sum() == exact.labelled.sum() > 0
    assert exact.found.all()
    far = score_frame(label, label.keypoints + 1000, both)
    assert far.correct.sum() == 0
    swapped = score_frame(label, label.keypoints[::-1], both)
    assert swapped.correct.sum() < exact.correct.sum()
    missed = score_frame(label, label.keypoints, np.array([True, False]))
    assert missed.correct[1].sum() == 0 and missed.correct[0].sum() == exact.correct[0].sum()
    total = summarise([label, label], [exact, missed])
    assert total.both_frames == 2 and total.both_found == 0.5
    assert total.pck == pytest.approx((2 * exact.correct.sum() - exact.correct[1].sum()) / (2 * exact.labelled.sum()))


def test_mask_iou_from_polygons():
    square = np.array([[10, 10], [50, 10], [50, 50], [10, 50]], float)
    label = LabelledFrame("x_00000", "x", 0, np.full((2, 21, 2), np.nan), np.array([True, False]),
                          ([square], []), touching=False)
    mask = label.mask(64, 64)
    assert set(np.unique(mask)) == {0, 1}
    s = score_frame(label, np.full((2, 21, 2), np.nan), np.array([True, False]), mask)
    assert s.iou[0] == pytest.approx(1.0)
    shifted = np.roll(mask, 20, axis=1)
    s = score_frame(label, np.full((2, 21, 2), np.nan), np.array([True, False]), shifted)
    assert 0.2 < s.iou[0] < 0.4  # a 41-px square moved by 20: 21 / 61


def test_malformed_label_files_are_named(tmp_path, dataset):
    (tmp_path / "labels").mkdir()
    (tmp_path / "sources.json").write_text((DEFAULT_FOLDER / "sources.json").read_text())
    bad = {"source": "asl", "frame": 3, "hands": {"right": {"present": False, "keypoints": [[1, 2]] * 21}}}
    (tmp_path / "labels" / "asl_00003.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"asl_00003\.json.*not present"):
        load_validation_set(tmp_path)
    bad = {"source": "nowhere", "frame": 3, "hands": {}}
    (tmp_path / "labels" / "asl_00003.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="source 'nowhere'"):
        load_validation_set(tmp_path)


@pytest.mark.skipif(not MEDIA.is_dir(), reason="the real clips are local material, absent here")
def test_frames_are_read_from_the_checked_videos(dataset):
    reader = FrameReader(dataset, MEDIA)
    label = next(f for f in dataset.frames if reader.available(f.source))
    image = reader.read(label)
    assert image.ndim == 3 and image.dtype == np.uint8
    pts = label.keypoints[np.isfinite(label.keypoints).all(-1)]
    assert (pts >= 0).all() and (pts[:, 0] < image.shape[1]).all() and (pts[:, 1] < image.shape[0]).all()
