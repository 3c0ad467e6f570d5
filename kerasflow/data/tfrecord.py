"""Packing clips into TFRecord SequenceExamples of JPEG frames, and a pure-TF reader for them.

Record layout (TF Model Garden's video keys): context ``clip/label/index`` (int64),
``clip/label/text`` and ``clip/media_id`` (the source path, bytes); sequence ``image/encoded``
(one JPEG per frame, every frame of the clip). Clips are written in a seeded random order, so a
reader's shuffle buffer of a few hundred clips mixes the classes. A ``<out>.json`` sidecar holds the
class names.
The reader samples, augments and normalises one clip input exactly like ``make_dataset``.
"""

import json
import logging
import os
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from kerasflow.atomic import atomic_path, write_json
from kerasflow.data.pipeline import (
    CROP_SCALES_OVER_32,
    NUM_CROP_POSITIONS,
    crop_origins,
    short_side_for,
    with_element_seeds,
)
from kerasflow.data.video import BAD_VIDEO_POLICIES, BadVideo, iter_clip_frames, scaled_shape
from kerasflow.errors import UserError

logger = logging.getLogger("kerasflow.data")

LABEL_KEY = "clip/label/index"
LABEL_TEXT_KEY = "clip/label/text"
MEDIA_ID_KEY = "clip/media_id"
IMAGE_KEY = "image/encoded"


def _bytes_feature(values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def clip_example(frames, label, label_text, source, jpeg_quality=95):
    """A ``tf.train.SequenceExample`` of an iterable of RGB uint8 frames ``(H, W, 3)``, each JPEG-encoded.

    Frames are encoded one at a time as the iterable yields them, so a generator of decoded frames
    never holds more than one decoded frame.
    """
    encoded = []
    for frame in frames:
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        if not ok:
            raise BadVideo(source, "a frame could not be JPEG-encoded")
        encoded.append(data.tobytes())
    context = tf.train.Features(
        feature={
            LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
            LABEL_TEXT_KEY: _bytes_feature([label_text.encode("utf-8")]),
            MEDIA_ID_KEY: _bytes_feature([str(source).encode("utf-8")]),
        }
    )
    sequence = tf.train.FeatureLists(
        feature_list={IMAGE_KEY: tf.train.FeatureList(feature=[_bytes_feature([data]) for data in encoded])}
    )
    return tf.train.SequenceExample(context=context, feature_lists=sequence)


def _scale_frame(frame, short_side):
    height, width = frame.shape[:2]
    new_height, new_width = scaled_shape(height, width, min(height, width), short_side)
    return cv2.resize(frame, (new_width, new_height), interpolation=cv2.INTER_LINEAR)


def pack_index(index, out_path, *, short_side=None, jpeg_quality=95, on_bad_video="skip", seed=0):
    """Write every clip of ``index`` to the TFRecord file ``out_path`` (atomically); returns a summary dict.

    Clips go in the order of a permutation seeded by ``seed`` (the same seed, the same file), so
    neighbouring records mix the classes. ``short_side`` rescales frames (shorter side, aspect kept)
    before encoding to save space; use at least the reader's ``round(frame_size * 256 / 224)``. Bad
    clips are logged and left out, or raise ``BadVideo`` with ``on_bad_video="fail"``.
    """
    if on_bad_video not in BAD_VIDEO_POLICIES:
        raise UserError(f"on_bad_video {on_bad_video!r} invalid; use one of {', '.join(BAD_VIDEO_POLICIES)}")
    out_path = Path(out_path)
    if out_path.is_dir():
        raise UserError(f"output {str(out_path)!r} is a folder; "
                        f"pass a file path such as {str(out_path / 'train.tfrecord')!r}")
    if not out_path.parent.is_dir():
        raise UserError(f"output folder {str(out_path.parent)!r} does not exist; create it first")
    order = np.random.default_rng(seed).permutation(len(index.items))
    written, skipped = 0, []
    with atomic_path(out_path) as temporary, tf.io.TFRecordWriter(temporary) as writer:
        for position in tqdm(order, desc=f"packing {out_path.name}", unit="clip"):
            item = index.items[position]
            try:
                frames = (
                    frame if short_side is None else _scale_frame(frame, short_side)
                    for frame in iter_clip_frames(item.source)
                )
                example = clip_example(frames, item.label, index.class_names[item.label], item.source, jpeg_quality)
            except BadVideo as error:
                if on_bad_video == "fail":
                    raise
                logger.warning("skipping %s (re-encode or remove it)", error)
                skipped.append(error.path)
                continue
            writer.write(example.SerializeToString())
            written += 1
    summary = {
        "bytes": out_path.stat().st_size,
        "dataset": index.dataset,
        "subset": index.subset,
        "class_names": index.class_names,
        "clips": written,
        "skipped": skipped,
        "seed": seed,
    }
    write_json(out_path.with_name(f"{out_path.name}.json"), summary)
    return summary


def _parse_clip(serialized):
    context, sequence = tf.io.parse_single_sequence_example(
        serialized,
        context_features={LABEL_KEY: tf.io.FixedLenFeature([], tf.int64)},
        sequence_features={IMAGE_KEY: tf.io.FixedLenSequenceFeature([], tf.string)},
    )
    return sequence[IMAGE_KEY], tf.cast(context[LABEL_KEY], tf.int32)


def _sample_positions(num_available, spec, training, seed):
    """TF twin of ``video.clip_indices`` for one clip: segment starts (or a uniform draw per segment in
    training), or a contiguous window (random start in training, the centre at test)."""
    if spec.sampling == "segments":
        offsets = tf.random.stateless_uniform([spec.frames], seed=seed) if training else tf.zeros([spec.frames])
        positions = ((tf.range(spec.frames, dtype=tf.float32) + offsets) * tf.cast(num_available, tf.float32)
                     / spec.frames)
        return tf.minimum(tf.cast(tf.floor(positions), tf.int32), num_available - 1)
    last_start = tf.maximum(num_available - ((spec.frames - 1) * spec.stride + 1), 0)
    if training:
        start = tf.random.stateless_uniform([], seed=seed, maxval=last_start + 1, dtype=tf.int32)
    else:
        start = last_start // 2
    return tf.minimum(start + tf.range(spec.frames) * spec.stride, num_available - 1)


def _crop(frames, y, x, side, frame_size):
    crop = frames[:, y : y + side, x : x + side]
    return tf.image.resize(crop, [frame_size, frame_size], method="bilinear")


def _augment(frames, frame_size, training, seed, random_flip=True):
    """Scale, (flip, multi-scale corner crop | centre crop) a float clip ``(T, H, W, 3)``; one draw per clip."""
    if not training:
        return transform_frames(frames, frame_size)
    flip = tf.logical_and(tf.random.stateless_uniform([], seed=seed + [0, 1]) < 0.5, random_flip)
    scale = tf.random.stateless_uniform([], seed=seed + [0, 2], maxval=len(CROP_SCALES_OVER_32), dtype=tf.int32)
    position = tf.random.stateless_uniform([], seed=seed + [0, 3], maxval=NUM_CROP_POSITIONS, dtype=tf.int32)
    return transform_frames(frames, frame_size, flip, scale, position)


def transform_frames(frames, frame_size, flip=None, scale=None, position=None):
    """TF twin of ``pipeline.transform_clip`` on a float clip ``(T, H, W, 3)`` -> ``(T, S, S, 3)``.

    ``flip`` (bool), ``scale`` (index into the crop scales) and ``position`` (0-4) are one clip's
    draw, as ``pipeline.CropDraw``; ``flip`` None means test time (centre crop).
    """
    height, width = tf.shape(frames)[1], tf.shape(frames)[2]
    short_side = short_side_for(frame_size)
    new_height, new_width = scaled_shape(height, width, tf.minimum(height, width), short_side)
    frames = tf.image.resize(frames, tf.stack([new_height, new_width]), method="bilinear")
    if flip is None:
        y, x = crop_origins(new_height, new_width, frame_size)[0]
        return frames[:, y : y + frame_size, x : x + frame_size]
    frames = tf.cond(tf.convert_to_tensor(flip), lambda: tf.reverse(frames, axis=[2]), lambda: frames)
    side = short_side * tf.gather(tf.constant(CROP_SCALES_OVER_32), scale) // 32
    origin = tf.gather(tf.stack([tf.stack(pair) for pair in crop_origins(new_height, new_width, side)]), position)
    return _crop(frames, origin[0], origin[1], side, frame_size)


def make_tfrecord_dataset(
    paths,
    spec,
    *,
    batch_size=32,
    training=False,
    seed=0,
    drop_remainder=None,
    shuffle=None,
    shuffle_buffer=256,
    random_flip=True,
):
    """``(inputs, label, weight)`` batches from packed TFRecord files, as ``make_dataset`` gives them.

    ``spec`` is the one clip input (``InputSpec``) to read, e.g. ``rgb``; the weight is always 1.
    Pure TF: parse, sample ``spec.frames`` indices, ``tf.io.decode_jpeg`` only those frames, augment,
    batch (uint8), prefetch. Deterministic given ``seed``. ``random_flip=False`` never flips. The
    number of batches is known from the files' sidecars (``pack_index`` writes them).
    """
    paths = [str(path) for path in ([paths] if isinstance(paths, (str, Path)) else paths)]
    for path in paths:
        if not os.path.isfile(path):
            raise UserError(f"TFRecord file {path!r} does not exist; pack it with 'python -m kerasflow.data pack'")
    if not spec.is_clip:
        raise UserError(f"packed TFRecords hold RGB frames; the {spec.name!r} input cannot be read from them")
    clips = 0
    for path in paths:
        sidecar = read_sidecar(path)
        if sidecar.get("bytes", os.path.getsize(path)) != os.path.getsize(path):
            raise UserError(f"TFRecord file {path!r} has {os.path.getsize(path)} bytes but was packed with "
                            f"{sidecar['bytes']}: it is truncated or was replaced; pack it again")
        clips += sidecar["clips"]
    shuffle = training if shuffle is None else shuffle
    drop_remainder = training if drop_remainder is None else drop_remainder

    def load(serialized, element_seed):
        encoded, label = _parse_clip(serialized)
        seed = tf.stack([element_seed, tf.constant(0, tf.int64)])
        positions = _sample_positions(tf.shape(encoded)[0], spec, training, seed)
        frames = tf.map_fn(
            lambda data: tf.io.decode_jpeg(data, channels=3),
            tf.gather(encoded, positions),
            fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8),
        )
        frames = _augment(tf.cast(frames, tf.float32), spec.size, training, seed, random_flip)
        frames = tf.cast(tf.clip_by_value(tf.round(frames), 0.0, 255.0), tf.uint8)
        frames.set_shape(spec.shape)
        return {spec.name: frames}, label, tf.constant(1.0)

    dataset = tf.data.TFRecordDataset(paths).apply(tf.data.experimental.assert_cardinality(clips))
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = with_element_seeds(dataset, seed)
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def read_sidecar(path):
    """The ``<path>.json`` summary written by ``pack_index`` (class names, counts)."""
    sidecar = Path(f"{path}.json")
    if not sidecar.is_file():
        raise UserError(f"{str(sidecar)!r} is missing; re-pack {str(path)!r} with 'python -m kerasflow.data pack'")
    try:
        summary = json.loads(sidecar.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise UserError(f"{str(sidecar)!r} is not valid JSON ({error}); "
                        f"re-pack {str(path)!r} with 'python -m kerasflow.data pack'") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("class_names"), list):
        raise UserError(f"{str(sidecar)!r} has no 'class_names' list; "
                        f"re-pack {str(path)!r} with 'python -m kerasflow.data pack'")
    return summary
