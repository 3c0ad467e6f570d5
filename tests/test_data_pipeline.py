"""tf.data pipeline: shapes, normalisation, shared augmentation, determinism, bad-video skip/fail."""

import types

import cv2
import numpy as np
import pytest
import tensorflow as tf

from kerasflow.data import pipeline
from kerasflow.data.feeds import video_inputs
from kerasflow.data.indexes import VideoIndex, VideoItem
from kerasflow.data.inputs import InputSpec
from kerasflow.data.pipeline import (
    BadVideoLog,
    CropDraw,
    bad_video_from_tf_error,
    crop_origins,
    load_example,
    make_dataset,
    scaled_shape,
    short_side_for,
    transform_clip,
    transform_planes,
)
from kerasflow.data.synthetic import write_video
from kerasflow.data.tfrecord import transform_frames
from kerasflow.errors import UserError
from kerasflow.training.callbacks import BadVideoReport


def rgb_input(frames, size=16):
    return [InputSpec("rgb", frames, size)]


def flow_input(pairs, size=16):
    return [InputSpec("tvl1_stack", pairs, size)]


def _texture(seed, height=24, width=32):
    noise = np.random.default_rng(seed).random((height, width)).astype(np.float32)
    return (cv2.GaussianBlur(noise, (0, 0), 2) * 255).clip(0, 255).astype(np.uint8)


def _png_clip(folder, frames):
    folder.mkdir(parents=True)
    for number, frame in enumerate(frames, start=1):
        cv2.imwrite(str(folder / f"image_{number:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return str(folder)


def _textured_avi(path, seed, frames=8):
    write_video(path, np.stack([np.repeat(_texture(seed + t)[..., None], 3, 2) for t in range(frames)]))
    return str(path)


def test_geometry_known_answers():
    assert short_side_for(224) == 256 and short_side_for(32) == 37
    assert scaled_shape(240, 320, 240, 256) == (256, 341)  # PIL Scale: int(256 * 320 / 240)
    assert scaled_shape(48, 64, 48, 37) == (37, 49)
    assert crop_origins(37, 49, 24) == ((6, 12), (0, 0), (0, 25), (13, 0), (13, 25))


def test_the_pipeline_feeds_raw_frames_the_model_normalises(tmp_path):
    from kerasflow.layers import FrameNormalization

    colour = np.array([200, 100, 50], np.uint8)
    source = _png_clip(tmp_path / "flat", [np.broadcast_to(colour, (24, 32, 3)).copy()] * 4)
    index = VideoIndex([VideoItem(source, 1)], ["a", "b"], "folder", "test")
    inputs, label, weight = next(iter(make_dataset(index, rgb_input(3), batch_size=2)))
    assert set(inputs) == {"rgb"} and inputs["rgb"].shape == (1, 3, 16, 16, 3) and inputs["rgb"].dtype == tf.uint8
    np.testing.assert_array_equal(inputs["rgb"].numpy()[0, 1, 5, 7], colour)
    expected = (colour / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(np.asarray(FrameNormalization()(inputs["rgb"]))[0, 1, 5, 7], expected, atol=1e-5)
    assert label.numpy().tolist() == [1] and label.dtype == tf.int32 and weight.numpy().tolist() == [1.0]


@pytest.fixture
def grey_clip_with_flow(tmp_path):
    """A clip of identical grey frames whose flow_x and flow_y planes equal the same picture."""
    picture = _texture(0)
    source = _png_clip(tmp_path / "frames" / "c" / "1", [np.repeat(picture[..., None], 3, 2)] * 6)
    for axis in ("x", "y"):
        folder = tmp_path / f"flow_{axis}" / "c" / "1"
        folder.mkdir(parents=True)
        for number in range(1, 6):
            cv2.imwrite(str(folder / f"flow_{axis}_{number:05d}.png"), picture)
    return VideoItem(source, 0, str(tmp_path / "flow_x" / "c" / "1"))


def test_one_augmentation_draw_shared_by_frames_and_flow(grey_clip_with_flow):
    draws, crops = set(), set()
    for seed in range(12):
        rgb, flow = load_example(grey_clip_with_flow, rgb_input(4, 20) + flow_input(3, 20), True, seed)
        assert rgb.shape == (4, 20, 20, 3) and flow.shape == (20, 20, 6)
        for frame in rgb[1:]:
            np.testing.assert_array_equal(frame, rgb[0])
        grey = rgb[0, ..., 0].astype(int)
        draw = CropDraw(np.random.default_rng(seed))
        draws.add((draw.flip, draw.scale, draw.position))
        crops.add(rgb[0].tobytes())
        for plane in range(3):
            np.testing.assert_array_equal(flow[..., 2 * plane + 1], grey)  # y: same geometry
            # x inverted on a flip (before the crop's resize, as ego-rnn: rounding may differ by 1)
            np.testing.assert_allclose(flow[..., 2 * plane], 255 - grey if draw.flip else grey,
                                       atol=1 if draw.flip else 0)
    assert {flip for flip, _, _ in draws} == {True, False}
    assert len(crops) >= 6
    rgb_test, flow_test = load_example(grey_clip_with_flow, rgb_input(4, 20) + flow_input(3, 20), False, 0)
    centre = cv2.resize(_texture(0), (short_side_for(20) * 32 // 24, short_side_for(20)),
                        interpolation=cv2.INTER_LINEAR)
    y, x = crop_origins(*centre.shape, 20)[0]
    np.testing.assert_array_equal(rgb_test[0, ..., 0], centre[y : y + 20, x : x + 20])
    np.testing.assert_array_equal(flow_test[..., 0], rgb_test[0, ..., 0])


@pytest.fixture
def clips(tmp_path):
    return [VideoItem(_textured_avi(tmp_path / f"clip {n}.avi", n), n % 2) for n in range(6)]


def _batches(dataset):
    """``(rgb clips, labels)`` of each batch, without the examples of weight 0 (skipped bad clips)."""
    return [(inputs["rgb"].numpy()[weight.numpy() > 0], label.numpy()[weight.numpy() > 0])
            for inputs, label, weight in dataset]


def test_training_pipeline_deterministic_given_seed(clips):
    index = VideoIndex(clips, ["a", "b"], "folder", "train")
    first = make_dataset(index, rgb_input(4), batch_size=4, training=True, seed=5)
    epoch1, epoch2 = _batches(first), _batches(first)
    second = make_dataset(index, rgb_input(4), batch_size=4, training=True, seed=5)
    assert len(epoch1) == 1 and epoch1[0][0].shape == (4, 4, 16, 16, 3)  # 6 clips, drop_remainder in training
    for (a, la), (b, lb) in zip(epoch1 + epoch2, _batches(second) + _batches(second)):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    assert not np.array_equal(epoch1[0][0], epoch2[0][0])
    other = _batches(make_dataset(index, rgb_input(4), batch_size=4, training=True, seed=6))
    assert not np.array_equal(other[0][0], epoch1[0][0])
    test = _batches(make_dataset(index, rgb_input(4), batch_size=4))
    assert [len(labels) for _, labels in test] == [4, 2]
    assert np.concatenate([labels for _, labels in test]).tolist() == [0, 1, 0, 1, 0, 1]


def test_prediction_loader_matches_test_pipeline(clips):
    inputs, display = video_inputs(clips[2].source, rgb_input(4))
    assert display.shape == (4, 16, 16, 3) and display.dtype == np.uint8
    index = VideoIndex([clips[2]], ["a", "b"], "folder", "test")
    batch = _batches(make_dataset(index, rgb_input(4), batch_size=1))[0][0]
    np.testing.assert_allclose(inputs["rgb"], batch, atol=1e-6)


@pytest.fixture
def index_with_bad_clips(tmp_path, clips):
    corrupt = tmp_path / "corrupt (x)!.avi"
    corrupt.write_bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    empty = tmp_path / "empty, file.mp4"
    empty.write_bytes(b"")
    bad = [VideoItem(str(corrupt), 0), VideoItem(str(empty), 1), VideoItem(str(tmp_path / "gone.avi"), 0)]
    return VideoIndex(clips[:2] + bad + clips[2:4], ["a", "b"], "folder", "test"), [item.source for item in bad]


def test_bad_videos_are_skipped_counted_and_reported(index_with_bad_clips, capsys):
    index, bad_paths = index_with_bad_clips
    log = BadVideoLog()
    dataset = make_dataset(index, rgb_input(4), batch_size=3, bad_videos=log)
    assert dataset.cardinality().numpy() == 3  # known before decoding: bad clips stay in, with weight 0
    weights = np.concatenate([weight.numpy() for _, _, weight in dataset])
    assert weights.tolist() == [1, 1, 0, 0, 0, 1, 1]
    batches = _batches(dataset)
    assert np.concatenate([labels for _, labels in batches]).tolist() == [0, 1, 0, 1]
    assert log.count == 3 and sorted(log.paths) == sorted(bad_paths)
    _batches(dataset)  # second epoch: same clips, counted once each
    assert log.count == 3 and log.skips == 9
    summary = log.summary()
    assert "\n" not in summary and summary.startswith("skipped 3 bad videos")
    BadVideoReport((BadVideoLog(), log)).on_epoch_end(0)
    assert capsys.readouterr().out.startswith("epoch 1 (test): skipped 3 bad videos")
    BadVideoReport((BadVideoLog(), BadVideoLog())).on_epoch_end(0)
    assert capsys.readouterr().out == ""


def test_flow_stack_too_short_is_a_bad_video(tmp_path, grey_clip_with_flow):
    index = VideoIndex([grey_clip_with_flow], ["c"], "folder", "test")
    log = BadVideoLog()
    dataset = make_dataset(index, flow_input(8), batch_size=2, bad_videos=log)
    assert [weight.numpy().tolist() for _, _, weight in dataset] == [[0.0]]
    assert log.count == 1 and "needs 8" in log.summary()
    stack = next(iter(make_dataset(index, flow_input(3), batch_size=2)))[0]["tvl1_stack"]
    assert stack.shape == (1, 16, 16, 6)
    with pytest.raises(UserError, match="flow"):
        make_dataset(VideoIndex([VideoItem("x.avi", 0)], ["c"], "folder", "test"), flow_input(5))


def test_fail_policy_stops_with_the_path(index_with_bad_clips):
    index, bad_paths = index_with_bad_clips
    dataset = make_dataset(index, rgb_input(4), batch_size=3, on_bad_video="fail")
    with pytest.raises(tf.errors.OpError) as caught:
        _batches(dataset)
    error = bad_video_from_tf_error(caught.value)
    assert error is not None and error.path == bad_paths[0] and "cannot be opened" in error.reason
    assert bad_video_from_tf_error(RuntimeError("unrelated")) is None
    with pytest.raises(UserError, match="on_bad_video"):
        make_dataset(index, rgb_input(4), on_bad_video="ignore")


ALL_DRAWS = [
    types.SimpleNamespace(flip=flip, scale=scale, position=position)
    for flip in (False, True) for scale in range(4) for position in range(5)
]


def test_long_clips_and_flow_stacks_resize_like_single_frames():
    # 50 RGB frames = 150 channels: over cv2.resize's 128, so resized in chunks; the same numbers
    clip = np.random.default_rng(0).integers(0, 256, (50, 24, 32, 3), dtype=np.uint8)
    for draw in (None, ALL_DRAWS[7], ALL_DRAWS[33]):
        out = transform_clip(clip, 16, draw)
        assert out.shape == (50, 16, 16, 3)
        for t in (0, 41, 42, 43, 49):  # frames on both sides of the 128-channel chunk border
            np.testing.assert_array_equal(out[t], transform_clip(clip[t : t + 1], 16, draw)[0])
    stack = np.random.default_rng(1).integers(0, 256, (24, 32, 60), dtype=np.uint8)  # 30 flow pairs
    out = transform_planes(stack, 16, ALL_DRAWS[25], flow=True)
    assert out.shape == (16, 16, 60)
    np.testing.assert_array_equal(out[..., 58:], transform_planes(stack[..., 58:], 16, ALL_DRAWS[25], flow=True))


def test_a_50_frame_clip_is_not_a_bad_video(tmp_path):
    frames = [np.repeat(_texture(n)[..., None], 3, 2) for n in range(50)]
    item = VideoItem(_png_clip(tmp_path / "long", frames), 0)
    (clip,) = load_example(item, rgb_input(50), True, 3)
    assert clip.shape == (50, 16, 16, 3)


def test_tf_reader_augmentation_equals_transform_clip():
    clip = np.stack([np.repeat(_texture(n)[..., None], 3, 2) for n in range(3)])
    clip[..., 1] = 255 - clip[..., 1]  # channels differ
    for draw in [None, *ALL_DRAWS]:
        expected = transform_clip(clip, 16, draw).astype(np.float32)
        args = () if draw is None else (draw.flip, draw.scale, draw.position)
        actual = np.round(transform_frames(tf.constant(clip, tf.float32), 16, *args).numpy())
        assert actual.shape == expected.shape == (3, 16, 16, 3)
        assert np.abs(actual - expected).max() <= 1, draw


@pytest.fixture
def gradient_index(tmp_path):
    frame = np.repeat(np.repeat(np.arange(0, 256, 8, dtype=np.uint8)[None, :, None], 24, 0), 3, 2)  # 24 x 32
    source = _png_clip(tmp_path / "gradient", [frame] * 3)
    return VideoIndex([VideoItem(source, 0)] * 8, ["a"], "folder", "train")


@pytest.mark.parametrize("random_flip", [False, True])
def test_random_flip_known_answer(gradient_index, random_flip):
    dataset = make_dataset(gradient_index, rgb_input(2), batch_size=8, training=True, seed=2, random_flip=random_flip)
    clips = np.concatenate([batch for batch, _ in _batches(dataset) + _batches(dataset)])  # 16 draws
    # the brightness rises from left to right, or (flipped) falls: never flat
    rising = clips[:, :, :, -1, 0].mean(axis=(1, 2)) > clips[:, :, :, 0, 0].mean(axis=(1, 2))
    if random_flip:
        assert 0 < rising.sum() < 16
    else:
        assert rising.all()


def test_only_decoding_errors_become_bad_videos(grey_clip_with_flow, monkeypatch):
    def broken_decoder(*args, **kwargs):
        raise cv2.error("(-215:Assertion failed) decoder")

    def broken_transform(*args, **kwargs):
        raise ValueError("a configuration bug")

    monkeypatch.setattr(pipeline, "read_frames", broken_decoder)
    with pytest.raises(pipeline.BadVideo, match="error: .*decoder"):
        load_example(grey_clip_with_flow, rgb_input(4), False, 0)
    monkeypatch.undo()
    monkeypatch.setattr(pipeline, "transform_planes", broken_transform)
    with pytest.raises(ValueError, match="configuration bug"):
        load_example(grey_clip_with_flow, flow_input(3), False, 0)
