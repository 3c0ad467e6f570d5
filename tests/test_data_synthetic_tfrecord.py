"""Synthetic motion dataset, TFRecord packing and reading, and the ``python -m kerasflow.data`` CLI."""

import json

import cv2
import numpy as np
import pytest
import tensorflow as tf

from kerasflow.data.__main__ import main
from kerasflow.data.datasets import build_index
from kerasflow.data.indexes import VideoIndex
from kerasflow.data.inputs import InputSpec
from kerasflow.data.pipeline import make_dataset
from kerasflow.data.synthetic import (
    DIRECTIONS,
    LETTERS_NOISE_SIGMA,
    LETTERS_SPEED,
    VARIANTS,
    letters_scene,
    make_synthetic_dataset,
    render_video,
)
from kerasflow.data.tfrecord import LABEL_KEY, MEDIA_ID_KEY, make_tfrecord_dataset, pack_index, read_sidecar
from kerasflow.errors import UserError


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("synth") / "data", classes=4, videos_per_class=4,
                                  frames=8, size=32)


def test_synthetic_layout_and_real_videos(synthetic):
    train = build_index("folder", synthetic, subset="train")
    test = build_index("folder", synthetic, subset="test")
    assert train.class_names == ["00_right", "01_left", "02_down", "03_up"]
    assert train.class_counts().tolist() == [3, 3, 3, 3] and test.class_counts().tolist() == [1, 1, 1, 1]
    assert _decode(test.items[0].source).shape == (8, 32, 32, 3)
    assert not list(synthetic.rglob(".*tmp*"))


def test_first_frame_says_nothing_about_the_class():
    videos = [render_video(np.random.default_rng(11), direction, 6, 32).astype(int) for _, direction in DIRECTIONS]
    for video in videos[1:]:
        np.testing.assert_array_equal(video[0], videos[0][0])
        assert np.abs(video[-1] - videos[0][-1]).mean() > 1  # ...the motion does
    # "right": the frame at t equals the first frame with its patch moved by round(t * speed) columns
    video = videos[0]
    diff_cols = np.nonzero(np.abs(video[1] - video[0]).sum(axis=(0, 2)))[0]
    patch = 3 * 32 // 8
    assert 0 < len(diff_cols) <= patch + 3
    rows = np.nonzero(np.abs(video[1] - video[0]).sum(axis=(1, 2)))[0]
    assert len(rows) <= patch


def test_rerun_reuses_and_other_arguments_refused(synthetic):
    first = synthetic / "02_down" / "02_down_001.avi"
    stamp = first.stat().st_mtime_ns
    assert make_synthetic_dataset(synthetic, classes=4, videos_per_class=4, frames=8, size=32) == synthetic
    assert first.stat().st_mtime_ns == stamp
    with pytest.raises(UserError, match="holds a synthetic dataset made with .*'classes': 4.*, not .*'classes': 3"):
        make_synthetic_dataset(synthetic, classes=3, videos_per_class=4, frames=8, size=32)


def test_interrupted_run_completes_missing_videos(tmp_path):
    out = make_synthetic_dataset(tmp_path / "d", classes=2, videos_per_class=2, frames=4, size=16)
    victim = out / "01_left" / "01_left_001.avi"
    original = victim.read_bytes()
    victim.unlink()
    manifest = json.loads((out / "synthetic.json").read_text())
    manifest["complete"] = False
    (out / "synthetic.json").write_text(json.dumps(manifest))
    make_synthetic_dataset(out, classes=2, videos_per_class=2, frames=4, size=16)
    assert victim.read_bytes() == original  # per-video seeds: the same video again


def test_cli_synth_and_pack(tmp_path, capsys):
    out = tmp_path / "cli data"
    assert main(["synth", str(out), "--classes", "2", "--videos-per-class", "2", "--frames", "4", "--size", "16"]) == 0
    assert (out / "train.txt").read_text().count("\n") == 2
    record = tmp_path / "train set.tfrecord"
    assert main(["pack", "--dataset", "folder", "--root", str(out), "--subset", "train", str(record)]) == 0
    assert main(["pack", "--dataset", "folder", "--root", str(out), "--subset", "train", str(record),
                 "--overwrite"]) == 0
    assert read_sidecar(record)["clips"] == 2 and read_sidecar(record)["class_names"] == ["00_right", "01_left"]
    with pytest.raises(SystemExit) as caught:
        main(["synth", str(out), "--classes", "9"])
    assert caught.value.code == 2 and "classes=9" in capsys.readouterr().err


def _decode(path):
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    return np.stack(frames)


def test_letters_variant_files_decode_and_manifest(tmp_path):
    out = make_synthetic_dataset(tmp_path / "letters", classes=4, videos_per_class=2, frames=6, size=32,
                                 variant="letters")
    manifest = json.loads((out / "synthetic.json").read_text())
    assert manifest["arguments"]["variant"] == "letters" and manifest["complete"]
    index = build_index("folder", out, subset="train")
    assert index.class_names == ["00_right", "01_left", "02_down", "03_up"] and len(index.items) == 4
    for item in index.items:
        video = _decode(item.source)
        assert video.shape == (6, 32, 32, 3)
        assert video.std() > 10  # a texture and letters, not a blank frame
    with pytest.raises(UserError, match="'variant': 'letters'.*, not .*'variant': 'patch'"):
        make_synthetic_dataset(out, classes=4, videos_per_class=2, frames=6, size=32)
    with pytest.raises(ValueError,
                       match=r"^`variant` must be one of \('patch', 'letters'\)\. Received: variant='dots'$"):
        make_synthetic_dataset(tmp_path / "dots", variant="dots")


def test_folder_made_before_variants_counts_as_patch(tmp_path):
    out = make_synthetic_dataset(tmp_path / "d", classes=2, videos_per_class=2, frames=4, size=16)
    manifest = json.loads((out / "synthetic.json").read_text())
    assert manifest["arguments"]["variant"] == "patch"
    del manifest["arguments"]["variant"]  # as written by the generator before variants existed
    (out / "synthetic.json").write_text(json.dumps(manifest))
    assert make_synthetic_dataset(out, classes=2, videos_per_class=2, frames=4, size=16) == out
    with pytest.raises(UserError, match="holds a synthetic dataset made with"):
        make_synthetic_dataset(out, classes=2, videos_per_class=2, frames=4, size=16, variant="letters")


def test_cli_synth_letters(tmp_path):
    out = tmp_path / "cli letters"
    argv = ["synth", str(out), "--classes", "2", "--videos-per-class", "2", "--frames", "4", "--size", "16"]
    assert main([*argv, "--variant", "letters"]) == 0
    assert json.loads((out / "synthetic.json").read_text())["arguments"]["variant"] == "letters"
    assert VARIANTS == ("patch", "letters")


def _best_shift(moving, reference, reach):
    """The integer (dy, dx) within ``reach`` for which ``reference`` rolled by it matches ``moving``
    best (boolean masks), and the intersection over union there."""
    scores = {}
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            rolled = np.roll(reference, (dy, dx), axis=(0, 1))
            scores[dy, dx] = (rolled & moving).sum() / max((rolled | moving).sum(), 1)
    shift = max(scores, key=scores.get)
    return shift, scores[shift]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_letters_move_in_whole_pixel_steps_of_the_promised_speed(seed):
    frames, size = 9, 48
    low, high = LETTERS_SPEED
    for _, direction in DIRECTIONS:
        scene = letters_scene(np.random.default_rng(seed), direction, frames, size)
        clean = render_video(np.random.default_rng(seed), direction, frames, size, "letters", noise=False)
        assert low <= scene.speed <= high
        # The letters' pixels, found in the rendered frames (no noise): whatever differs from the background.
        letters = [np.abs(frame.astype(np.float32) - scene.background).max(axis=-1) > 8 for frame in clean]
        assert letters[0].mean() > 0.02
        shifts = []
        for t in range(1, frames):
            shift, overlap = _best_shift(letters[t], letters[0], reach=int(high * t) + 1)
            assert overlap > 0.9  # the letters moved rigidly
            shifts.append(shift)
        shifts = np.array(shifts)
        np.testing.assert_array_equal(shifts, scene.offsets[1:])  # the rendered motion is the promised one
        steps = np.diff(np.concatenate([[[0, 0]], shifts]), axis=0)
        for axis in (0, 1):
            if direction[axis] == 0:
                assert (steps[:, axis] == 0).all()
            else:
                along = steps[:, axis] * direction[axis]  # whole pixels, never against the class's direction
                assert along.min() >= 0 and along.max() <= np.ceil(high)
                assert set(along.tolist()) <= {int(np.floor(scene.speed)), int(np.ceil(scene.speed))}
                speed = along.sum() / (frames - 1)  # rounding: off by at most 1 px over the video
                assert low - 1 / (frames - 1) <= speed <= high + 1 / (frames - 1)
                assert abs(speed - scene.speed) <= 1 / (frames - 1)


def test_slow_letters_step_one_pixel_every_other_frame():
    direction = DIRECTIONS[0][1]
    for seed in range(40):
        scene = letters_scene(np.random.default_rng(seed), direction, 12, 32)
        steps = np.diff(scene.offsets[:, 1])
        assert set(steps.tolist()) <= {int(np.floor(scene.speed)), int(np.ceil(scene.speed))}
        if scene.speed < 0.6:
            assert 0 in steps and 1 in steps  # below 1 px per frame: some frames do not move at all
            return
    raise AssertionError("no slow video among 40 seeds")


def test_letters_noise_is_present_and_new_every_frame():
    rng_noisy, rng_clean = np.random.default_rng(5), np.random.default_rng(5)
    noisy = render_video(rng_noisy, (0, 1), 6, 48, "letters").astype(np.float32)
    clean = render_video(rng_clean, (0, 1), 6, 48, "letters", noise=False).astype(np.float32)
    scene = letters_scene(np.random.default_rng(5), (0, 1), 6, 48)
    low, high = LETTERS_NOISE_SIGMA
    assert low <= scene.noise_sigma <= high
    noise = noisy - clean
    inside = (clean > 30) & (clean < 225)  # where clipping to 0-255 leaves the noise untouched
    assert abs(noise[inside].std() - scene.noise_sigma) < 0.15 * scene.noise_sigma
    assert abs(noise[inside].mean()) < 0.5
    # a static background pixel changes from frame to frame only by the noise
    assert not np.array_equal(noise[0], noise[1]) and abs(np.corrcoef(noise[0].ravel(), noise[1].ravel())[0, 1]) < 0.1


def test_letters_appearance_does_not_depend_on_the_class():
    for seed in range(3):
        videos = [render_video(np.random.default_rng(seed), direction, 5, 32, "letters") for _, direction in DIRECTIONS]
        for video in videos[1:]:
            np.testing.assert_array_equal(video[0], videos[0][0])  # the same first frame, noise included
            assert np.abs(video[-1].astype(int) - videos[0][-1]).mean() > 1  # ...the motion differs
        scenes = [letters_scene(np.random.default_rng(seed), direction, 5, 32) for _, direction in DIRECTIONS]
        for scene in scenes[1:]:
            np.testing.assert_array_equal(scene.background, scenes[0].background)
            np.testing.assert_array_equal(scene.ink, scenes[0].ink)
            assert scene.speed == scenes[0].speed and scene.noise_sigma == scenes[0].noise_sigma
    with pytest.raises(ValueError, match="variant must be one of"):
        render_video(np.random.default_rng(0), (0, 1), 4, 16, "dots")


def test_packed_reader_matches_numpy_reader(synthetic, tmp_path):
    index = build_index("folder", synthetic, subset="train")
    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"\0" * 100)
    index.items.append(type(index.items[0])(str(broken), 0))
    record = tmp_path / "train.tfrecord"
    summary = pack_index(index, record)
    assert summary["clips"] == 12 and summary["skipped"] == [str(broken)]
    index.items.pop()
    by_source = {item.source: item for item in index.items}
    index.items = [by_source[source] for source, _ in _records(record)]  # the packed order
    spec = InputSpec("rgb", 5, 24)
    expected = list(make_dataset(index, [spec], batch_size=5))
    packed_dataset = make_tfrecord_dataset([record], spec, batch_size=5)
    assert packed_dataset.cardinality().numpy() == 3  # 12 clips, known from the sidecar
    packed = list(packed_dataset)
    assert ([labels.numpy().tolist() for _, labels, _ in packed]
            == [labels.numpy().tolist() for _, labels, _ in expected])
    assert all(weights.numpy().tolist() == [1.0] * len(weights) for _, _, weights in packed)
    a = np.concatenate([inputs["rgb"].numpy() for inputs, _, _ in expected])
    b = np.concatenate([inputs["rgb"].numpy() for inputs, _, _ in packed])
    assert a.shape == b.shape == (12, 5, 24, 24, 3)
    a, b = a.astype(np.int16), b.astype(np.int16)
    difference = np.abs(a - b)
    assert difference.mean() < 3.5 and np.percentile(difference, 99) < 23  # grey levels: JPEG re-encoding only
    # a different clip would be far off
    assert np.abs(a[0] - b[1]).mean() > 5 * difference.mean()
    training = list(make_tfrecord_dataset(str(record), spec, batch_size=4, training=True, seed=1))
    again = list(make_tfrecord_dataset(str(record), spec, batch_size=4, training=True, seed=1))
    assert len(training) == 3 and training[0][0]["rgb"].shape == (4, 5, 24, 24, 3)
    for (x, y, _), (x2, y2, _) in zip(training, again):
        np.testing.assert_array_equal(x["rgb"].numpy(), x2["rgb"].numpy())
        np.testing.assert_array_equal(y.numpy(), y2.numpy())


def _records(path):
    """(media id, label) of each record of a TFRecord file, in file order."""
    records = []
    for serialized in tf.data.TFRecordDataset(str(path)):
        example = tf.train.SequenceExample.FromString(serialized.numpy())
        context = example.context.feature
        records.append((context[MEDIA_ID_KEY].bytes_list.value[0].decode(), context[LABEL_KEY].int64_list.value[0]))
    return records


def test_pack_order_mixes_classes_and_follows_the_seed(synthetic, tmp_path):
    train = build_index("folder", synthetic, subset="train")
    items = [item for item in train.items if item.label < 2] * 3  # 9 clips of class 0, 9 of class 1
    index = VideoIndex(sorted(items, key=lambda item: item.label), train.class_names, "folder", "train")
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        pack_index(index, tmp_path / f"{name}.tfrecord", seed=seed, short_side=16)
    records = _records(tmp_path / "a.tfrecord")
    labels = [label for _, label in records]
    assert sorted(records) == sorted((item.source, item.label) for item in index.items)  # every clip once
    assert 0 < sum(labels[:8]) < 8  # the first 8 records hold both classes
    assert (tmp_path / "a.tfrecord").read_bytes() == (tmp_path / "b.tfrecord").read_bytes()  # same seed, same file
    assert _records(tmp_path / "c.tfrecord") != records
    assert read_sidecar(tmp_path / "c.tfrecord")["seed"] == 1


def test_user_errors_are_one_line(synthetic, tmp_path, capsys):
    def error_of(argv):
        with pytest.raises(SystemExit) as caught:
            main(argv)
        err = capsys.readouterr().err
        assert caught.value.code == 2
        return [line for line in err.splitlines() if "error:" in line]

    pack = ["pack", "--dataset", "folder", "--root", str(synthetic)]
    errors = error_of([*pack, "--short-side", "0", str(tmp_path / "x.tfrecord")])
    assert len(errors) == 1 and "--short-side: 0 is not a positive integer" in errors[0]
    errors = error_of([*pack, str(tmp_path)])
    assert errors == [f"error: output {str(tmp_path)!r} is a folder; pass a file path such as "
                      f"{str(tmp_path / 'train.tfrecord')!r}"]
    a_file = tmp_path / "a file"
    a_file.write_text("x")
    # An existing OUT (a video of the dataset, notes, an earlier pack) is kept unless --overwrite.
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"my notes\n\x00\xff")
    errors = error_of([*pack, str(notes)])
    assert errors == [f"error: {notes} exists; it is not overwritten: pass --overwrite to replace it, or give "
                      "another output path"]
    assert notes.read_bytes() == b"my notes\n\x00\xff"
    video = next(synthetic.rglob("*.avi"))
    before = video.read_bytes()
    assert error_of([*pack, str(video)]) == [f"error: {video} exists; it is not overwritten: pass --overwrite to "
                                             "replace it, or give another output path"]
    assert video.read_bytes() == before
    sidecar = tmp_path / "n.tfrecord.json"
    sidecar.write_text("mine")
    assert error_of([*pack, str(tmp_path / "n.tfrecord")])[0].startswith(f"error: {sidecar} exists;")
    assert sidecar.read_text() == "mine"
    errors = error_of(["synth", str(a_file)])
    assert len(errors) == 1 and "is a file" in errors[0]
    assert error_of(["synth", str(tmp_path / "odd"), "--size", "33"]) == [
        "error: `size` must be even (MJPG video needs an even frame size), e.g. 34. Received: size=33"]
    assert error_of(["synth", str(tmp_path / "many"), "--classes", "9"]) == [
        "error: `classes` must be from 1 to 8 (the motion directions). Received: classes=9"]
    assert not (tmp_path / "odd").exists() and not (tmp_path / "many").exists()

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "synthetic.json").write_text('{"arguments": ')
    with pytest.raises(UserError, match="synthetic.json' is not valid JSON"):
        make_synthetic_dataset(corrupt, classes=2, videos_per_class=2, frames=4, size=16)
    record = tmp_path / "r.tfrecord"
    record.write_bytes(b"")
    (tmp_path / "r.tfrecord.json").write_text("[1, 2")
    with pytest.raises(UserError, match="r.tfrecord.json' is not valid JSON"):
        read_sidecar(record)


def test_a_recipe_value_the_synthetic_maker_refuses_names_its_key(tmp_path):
    from kerasflow.config import load_recipe
    from kerasflow.data.datasets import _make_synthetic

    data = load_recipe("demo", [f"data.root={tmp_path / 'data'}", "data.synthetic.size=33"]).data
    with pytest.raises(UserError, match=r"^data\.synthetic: `size` must be even \(MJPG video needs an even frame "
                                        r"size\), e\.g\. 34\. Received: size=33$"):
        _make_synthetic(data)
    assert not (tmp_path / "data").exists()
