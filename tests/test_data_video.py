"""OpenCV decoding: sampling, frame folders, video files, frame-count lies, flow stacks, bad files."""

import logging
import os

import cv2
import numpy as np
import pytest

from kerasflow.data import video
from kerasflow.data.flow_files import flow_y_folder, read_flow_stack
from kerasflow.data.synthetic import write_video
from kerasflow.data.video import BadVideo, list_frame_files, read_clip, sample_indices


def test_sample_indices_known_answers():
    assert sample_indices(10, 5).tolist() == [0, 2, 4, 6, 8]
    assert sample_indices(3, 5).tolist() == [0, 0, 1, 1, 2]
    assert sample_indices(25, 25).tolist() == list(range(25))
    assert sample_indices(1, 4).tolist() == [0, 0, 0, 0]


def test_sample_indices_training_jitters_inside_segments():
    draws = np.stack([sample_indices(100, 5, training=True, rng=np.random.default_rng(s)) for s in range(50)])
    segment = draws // 20
    assert (segment == np.arange(5)).all()
    assert len(np.unique(draws[:, 0])) > 5
    again = sample_indices(100, 5, training=True, rng=np.random.default_rng(7))
    assert again.tolist() == draws[7].tolist()
    short = sample_indices(3, 5, training=True, rng=np.random.default_rng(0))
    assert short.min() >= 0 and short.max() <= 2 and (np.diff(short) >= 0).all()


@pytest.fixture
def frame_folder(tmp_path):
    folder = tmp_path / "clip (1), take!"
    folder.mkdir()
    for number in range(1, 13):  # unpadded names: numeric, not lexical, order
        cv2.imwrite(str(folder / f"image_{number}.png"), np.full((6, 8, 3), 10 * number, np.uint8))
    cv2.imwrite(str(folder / "image_3 (1).png"), np.full((6, 8, 3), 255, np.uint8))
    (folder / ".DS_Store").write_bytes(b"\0\1")
    return folder


def test_frame_folder_sorted_numerically_ignoring_junk(frame_folder):
    clip = read_clip(frame_folder, 5)
    assert clip.shape == (5, 6, 8, 3) and clip.dtype == np.uint8
    # 12 frames (the "(1)" copy is ignored): indices 0, 2, 4, 7, 9 -> values 10 * (index + 1)
    assert clip[:, 0, 0, 0].tolist() == [10, 30, 50, 80, 100]


def test_video_file_rgb_order_and_sampling(tmp_path):
    bgr = np.stack([np.full((16, 24, 3), (0, 0, 20 * t + 40), np.uint8) for t in range(10)])
    path = tmp_path / "a b, (c)!.avi"
    write_video(path, bgr)
    clip = read_clip(path, 5)
    assert clip.shape == (5, 16, 24, 3)
    red = clip[:, 8, 12, 0].astype(int)
    assert np.abs(red - np.array([40, 80, 120, 160, 200])).max() <= 6
    assert clip[..., 2].max() <= 8  # blue stays dark: OpenCV's BGR was converted to RGB


def test_frame_count_that_lies_is_sampled_over_decodable_frames(tmp_path):
    full = tmp_path / "full.avi"
    write_video(full, np.stack([np.full((32, 48, 3), 10 * t + 20, np.uint8) for t in range(12)]))
    data = full.read_bytes()
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(data[: int(len(data) * 0.9)])
    capture = cv2.VideoCapture(str(truncated))
    stated = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    decodable = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        decodable.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    assert stated == 12 and 1 < len(decodable) < 12  # the header overstates
    clip = read_clip(truncated, 5)
    expected = np.stack([decodable[i] for i in sample_indices(len(decodable), 5)])
    np.testing.assert_array_equal(clip, expected)


def test_one_file_per_frame_stem_and_a_total_order(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    for number in range(1, 5):
        cv2.imwrite(str(folder / f"image_{number:05d}.png"), np.full((6, 8, 3), 10 * number, np.uint8))
    cv2.imwrite(str(folder / "image_00001.jpg"), np.full((6, 8, 3), 200, np.uint8))  # a second copy of frame 1
    cv2.imwrite(str(folder / "image_00003.bmp"), np.full((6, 8, 3), 220, np.uint8))
    cv2.imwrite(str(folder / "image_3.png"), np.full((6, 8, 3), 240, np.uint8))  # another stem, same number
    names = [os.path.basename(path) for path in list_frame_files(folder)]
    assert names == ["image_00001.jpg", "image_00002.png", "image_00003.png", "image_3.png", "image_00004.png"]
    clip = read_clip(folder, 5)
    assert np.abs(clip[:, 0, 0, 0].astype(int) - [200, 20, 30, 240, 40]).max() <= 2


def _count_opens(monkeypatch):
    opened = []
    real = cv2.VideoCapture

    def counting(path, *args):
        opened.append(path)
        return real(path, *args)

    monkeypatch.setattr(video.cv2, "VideoCapture", counting)
    return opened


def test_each_clip_opens_its_video_once(tmp_path, monkeypatch):
    path = tmp_path / "fine.avi"
    write_video(path, np.zeros((6, 16, 16, 3), np.uint8))
    opened = _count_opens(monkeypatch)
    read_clip(path, 3)
    read_clip(path, 3, training=True, rng=np.random.default_rng(0))
    assert opened == [str(path)] * 2


def test_real_frame_count_is_remembered_and_reported_once(tmp_path, monkeypatch, caplog):
    full = tmp_path / "full.avi"
    write_video(full, np.stack([np.full((32, 48, 3), 10 * t + 20, np.uint8) for t in range(12)]))
    truncated = tmp_path / "truncated but remembered.avi"
    truncated.write_bytes(full.read_bytes()[: int(full.stat().st_size * 0.9)])
    opened = _count_opens(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="kerasflow.data"):
        first = read_clip(truncated, 5, training=True, rng=np.random.default_rng(3))
        assert len(opened) == 2  # the header's count fails once...
        second = read_clip(truncated, 5, training=True, rng=np.random.default_rng(3))
        assert len(opened) == 3  # ...then the real count is known: one decode per clip
        read_clip(truncated, 5)
    np.testing.assert_array_equal(first, second)  # the same random numbers, with or without the count
    warnings = [record.getMessage() for record in caplog.records if str(truncated) in record.getMessage()]
    assert len(warnings) == 1 and "header states 12 frames" in warnings[0]


def test_bad_files_raise_bad_video_naming_the_path(tmp_path, frame_folder):
    corrupt = tmp_path / "corrupt (1).avi"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    for path in (corrupt, empty, tmp_path / "missing.avi", tmp_path / "no frames"):
        if path.name == "no frames":
            path.mkdir()
        with pytest.raises(BadVideo) as caught:
            read_clip(path, 4)
        assert caught.value.path == str(path) and str(path) in str(caught.value)
        assert "\n" not in str(caught.value)
    (frame_folder / "image_5.png").write_bytes(b"not a png")
    with pytest.raises(BadVideo, match="breaks mid-way.*image_5.png"):
        read_clip(frame_folder, 12)


def _flow_folders(root, count, size=(6, 8)):
    x_folder = root / "flow_x" / "S1" / "take_bread" / "1"
    y_folder = root / "flow_y" / "S1" / "take_bread" / "1"
    x_folder.mkdir(parents=True)
    y_folder.mkdir(parents=True)
    for number in range(1, count + 1):
        cv2.imwrite(str(x_folder / f"flow_x_{number:05d}.jpg"), np.full(size, 10 * number, np.uint8))
        cv2.imwrite(str(y_folder / f"flow_y_{number:05d}.jpg"), np.full(size, 10 * number + 5, np.uint8))
    return x_folder


def test_flow_stack_interleaves_centre_stack(tmp_path):
    x_folder = _flow_folders(tmp_path, 8)
    stack = read_flow_stack(x_folder, stack=5)
    assert stack.shape == (6, 8, 10) and stack.dtype == np.uint8
    # 8 flow frames, centre start (8 - 5) // 2 = 1 -> files 2..6
    expected = [value for n in range(2, 7) for value in (10 * n, 10 * n + 5)]
    assert np.abs(stack[0, 0].astype(int) - expected).max() <= 1
    starts = {int(read_flow_stack(x_folder, 5, True, np.random.default_rng(s))[0, 0, 0]) // 10 for s in range(40)}
    assert starts == {1, 2, 3, 4}  # every valid start 0..3 (file numbers 1..4) is drawn


def test_flow_stack_too_short_and_twin_folder(tmp_path):
    x_folder = _flow_folders(tmp_path, 3)
    with pytest.raises(BadVideo, match="has 3 flow frames, the flow stack needs 5"):
        read_flow_stack(x_folder, stack=5)
    assert str(flow_y_folder("/d/flow_x_processed/S1/a/1")) == "/d/flow_y_processed/S1/a/1"
    assert str(flow_y_folder("/d/my flow_x data/flow_x/S1/a")) == "/d/my flow_x data/flow_y/S1/a"
    assert flow_y_folder("/d/frames/S1/a") is None
    (tmp_path / "frames").mkdir()
    with pytest.raises(BadVideo, match="no 'flow_x' component"):
        read_flow_stack(tmp_path / "frames", stack=5)
