"""Video input: formats, frame rate, rotation, random access and each kind of bad input, on tiny generated clips."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from core_model.pipeline.video import ImageFolderSource, VideoError, VideoFileSource, open_source


def pattern(i: int, w: int = 64, h: int = 48) -> np.ndarray:
    """RGB frame whose brightness encodes the index (survives lossy codecs) with a red left half."""
    frame = np.full((h, w, 3), 20 + 10 * i, np.uint8)
    frame[:, : w // 2, 0] = 220
    return frame


def write(path: Path, frames: list[np.ndarray], fourcc: str, fps: float = 24.0, color: bool = True) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h), color)
    if not writer.isOpened():
        pytest.skip(f"OpenCV cannot write {fourcc} here")
    for f in frames:
        writer.write(f[:, :, ::-1].copy() if f.ndim == 3 else f)
    writer.release()
    return path


@pytest.mark.parametrize(("suffix", "fourcc"), [(".mp4", "mp4v"), (".avi", "MJPG"), (".mkv", "MJPG"),
                                                (".mov", "mp4v")])
def test_reads_every_frame_with_real_fps_and_colours(tmp_path, suffix, fourcc):
    path = write(tmp_path / f"clip{suffix}", [pattern(i) for i in range(12)], fourcc, fps=24.0)
    with open_source(path) as source:
        assert source.info.fps == pytest.approx(24.0)
        assert (source.info.width, source.info.height) == (64, 48)
        frames = list(source)
        assert source.stop_reason is None
    assert [i for i, _ in frames] == list(range(12))
    for i, frame in frames:
        assert frame.dtype == np.uint8 and frame.shape == (48, 64, 3)
        assert abs(float(frame[:, 40:, 1].mean()) - (20 + 10 * i)) < 6  # the right frame, in order
        assert frame[:, :20, 0].mean() > 180 and frame[:, 40:, 0].mean() < 150  # RGB, not BGR


def test_random_access_matches_streaming(tmp_path):
    path = write(tmp_path / "clip.avi", [pattern(i) for i in range(15)], "MJPG")
    with VideoFileSource(path) as source:
        streamed = dict(iter(source))
        for i in (7, 3, 14, 0, 1, 2, 9):
            np.testing.assert_array_equal(source.read(i), streamed[i])
        with pytest.raises(IndexError, match="frame 40"):
            source.read(40)


def test_webm_vp8(tmp_path):
    path = write(tmp_path / "clip.webm", [pattern(i) for i in range(6)], "VP80", fps=15.0)
    with open_source(path) as source:
        assert source.info.fps == pytest.approx(15.0)
        assert len(list(source)) == 6


def _set_rotation(path: Path, degrees: int) -> None:
    """Write a display matrix into the mp4's track header (what phones do) so the player must turn frames."""
    data = bytearray(path.read_bytes())
    at = data.index(b"tkhd") + 4
    version = data[at]
    matrix_at = at + 4 + (32 if version == 1 else 20) + 8 + 8
    a, b = {90: (0, 1), 180: (-1, 0), 270: (0, -1)}[degrees]
    one = 1 << 16
    values = [a * one, b * one, 0, -b * one, a * one, 0, 0, 0, 1 << 30]
    data[matrix_at: matrix_at + 36] = struct.pack(">9i", *values)
    path.write_bytes(bytes(data))


def test_rotation_metadata_is_honoured(tmp_path):
    path = write(tmp_path / "phone.mp4", [pattern(i) for i in range(4)], "mp4v")
    _set_rotation(path, 90)
    with open_source(path) as source:
        assert source.info.rotation in (90, 270)
        assert (source.info.width, source.info.height) == (48, 64)
        frame = source.read(0)
    assert frame.shape == (64, 48, 3)
    red_rows = frame[:, :, 0].mean(axis=1) > 180  # the red left half is now the top or bottom half
    assert red_rows[:24].all() != red_rows[40:].all()


def test_grayscale_video_gives_rgb(tmp_path):
    frames = [np.full((48, 64), 30 * i, np.uint8) for i in range(1, 5)]
    path = write(tmp_path / "gray.avi", frames, "MJPG", color=False)
    with open_source(path) as source:
        out = [f for _, f in source]
    assert out[2].shape == (48, 64, 3)
    assert abs(float(out[2].mean()) - 90) < 5


def test_sixteen_bit_video_is_scaled_to_8_bits(tmp_path):
    path = tmp_path / "deep.mkv"
    params = [cv2.VIDEOWRITER_PROP_DEPTH, cv2.CV_16U, cv2.VIDEOWRITER_PROP_IS_COLOR, 0]
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"FFV1"), 10.0, (64, 48), params)
    if not writer.isOpened():
        pytest.skip("OpenCV cannot write 16-bit FFV1 here")
    for i in range(3):
        writer.write(np.full((48, 64), 10000 * (i + 1), np.uint16))
    writer.release()
    with open_source(path) as source:
        out = [f for _, f in source]
    assert len(out) == 3 and out[0].dtype == np.uint8 and out[0].shape == (48, 64, 3)
    assert abs(float(out[1].mean()) - 20000 / 256) < 3


def test_image_folder_natural_order_16_bit_and_gray(tmp_path):
    for i in (1, 2, 10):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), np.full((40, 50), 1000 * i, np.uint16))
    (tmp_path / "notes.txt").write_text("not an image")
    with ImageFolderSource(tmp_path, fps=12) as source:
        assert [p.name for p in source.files] == ["f1.png", "f2.png", "f10.png"]
        assert source.info.bit_depth == 16 and source.info.fps == 12
        frames = [f for _, f in source]
    assert frames[2].shape == (40, 50, 3) and frames[2][0, 0, 0] == 10000 >> 8


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        open_source(tmp_path / "absent.mp4")


def test_not_a_video_renamed_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("these are meeting notes, not a video\n" * 50)
    with pytest.raises(VideoError, match="not a video"):
        open_source(path)


def test_empty_file(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoError, match="empty"):
        open_source(tmp_path / "empty.mp4")


def test_zero_frames(tmp_path):
    path = tmp_path / "none.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    writer.release()
    with pytest.raises(VideoError, match=r"no decodable frame|not a video"):
        open_source(path)


def test_truncated_video_decodes_what_it_can(tmp_path):
    path = write(tmp_path / "cut.avi", [np.random.default_rng(i).integers(0, 255, (96, 128, 3), np.uint8)
                                        for i in range(40)], "MJPG")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with open_source(path) as source:
        count = sum(1 for _ in source)
        assert 5 < count < 40
        assert source.stopped_at == count
        assert "stopped after frame" in source.stop_reason and "40" in source.stop_reason


def test_one_pixel_video_is_refused(tmp_path):
    path = write(tmp_path / "dot.avi", [np.zeros((1, 1, 3), np.uint8)] * 3, "MJPG")
    with pytest.raises(VideoError, match="1x1"):
        open_source(path)


def test_8k_video(tmp_path):
    frame = np.zeros((4320, 7680, 3), np.uint8)
    frame[2000:2100, 3000:3100] = 255
    path = write(tmp_path / "big.avi", [frame, frame], "MJPG", fps=5)
    with open_source(path) as source:
        assert (source.info.width, source.info.height) == (7680, 4320)
        out = source.read(1)
    assert out.shape == (4320, 7680, 3) and out[2050, 3050].min() > 200
