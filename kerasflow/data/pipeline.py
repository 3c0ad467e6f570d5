"""tf.data input pipelines: parallel OpenCV decoding, EgoRCNN augmentation, batching of uint8 frames.

Augmentation (ego-rnn ``spatial_transforms.py``), one draw per clip shared by every RGB frame and the
flow stack: shorter side scaled to ``round(frame_size * 256 / 224)`` (bilinear), horizontal flip with
p = 0.5, then a square crop of side ``shorter * s`` (s in 1, 0.875, 0.75, 0.65625) at the centre or a
corner, resized to ``frame_size``; optionally (``colour_jitter``) one brightness, contrast and saturation
change per RGB clip. Test time: a centre ``frame_size`` crop. A flipped flow stack has its x planes
inverted (255 - v), i.e. horizontal motion negated.

``data.crop: random`` crops as the representation-flow code's ``hmdb_dataset.py`` instead: no rescaling,
one ``frame_size`` square at a random place (training) or the centre (test). ``data.spatial_subsample``
keeps every n-th row and column of a frame first (2: that code's half resolution).
"""

import contextlib
import logging
import threading

import cv2
import numpy as np
import tensorflow as tf

from kerasflow.data.flow_files import read_flow_stack
from kerasflow.data.video import BAD_VIDEO_POLICIES, BadVideo, clip_indices, read_frames, scaled_shape
from kerasflow.errors import UserError

logger = logging.getLogger("kerasflow.data")

CROP_SCALES_OVER_32 = (32, 28, 24, 21)  # 1, 0.875, 0.75, 0.65625 as exact fractions
NUM_CROP_POSITIONS = 5  # centre, top-left, top-right, bottom-left, bottom-right
MAX_RESIZE_CHANNELS = 128  # cv2.resize's limit on channels (CV_CN_MAX)


def short_side_for(frame_size):
    """Shorter side before cropping: 256 for 224 crops, scaled alike for other sizes."""
    return round(frame_size * 256 / 224)


def crop_origins(height, width, side):
    """(y, x) of a ``side`` square at the centre, top-left, top-right, bottom-left and bottom-right.

    The zeros are written ``0 * side`` so that with a TF ``side`` every entry is a tensor of one dtype.
    """
    return (
        ((height - side) // 2, (width - side) // 2),
        (0 * side, 0 * side),
        (0 * side, width - side),
        (height - side, 0 * side),
        (height - side, width - side),
    )


class CropDraw:
    """One clip's random augmentation: ``flip`` (bool), ``scale`` (index into the 4 scales), ``position`` (0-4),
    for ``crop="random"`` the ``offset`` of the crop as fractions ``(y, x)`` of the room around it, and
    ``colour`` (the ``jitter_colours`` factors (brightness, contrast, saturation), or None).

    ``random_flip=False`` never flips (for datasets whose classes depend on left/right motion); the
    draw still consumes the same random numbers, so the crops do not change. The offset (only for a
    random crop) and then the colour factors (only for ``colour_jitter`` j > 0, each from [1 - j, 1 + j])
    are drawn after the multi-scale crop's draws, which therefore stay as they were.
    """

    def __init__(self, rng, random_flip=True, crop="multiscale_corners", colour_jitter=0.0):
        self.flip = bool(rng.random() < 0.5) and random_flip
        self.scale = int(rng.integers(len(CROP_SCALES_OVER_32)))
        self.position = int(rng.integers(NUM_CROP_POSITIONS))
        self.offset = tuple(float(v) for v in rng.random(2)) if crop == "random" else None
        self.colour = tuple(rng.uniform(1 - colour_jitter, 1 + colour_jitter, 3)) if colour_jitter > 0 else None


GREY_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601 luma of R, G, B


def jitter_colours(frames, brightness, contrast, saturation):
    """One colour change for every frame of an RGB clip ``(T, H, W, 3)`` uint8 (the same for all, so the motion
    between frames is kept while a clip's appearance changes from epoch to epoch), as torchvision's
    ``ColorJitter`` in this order: values times ``brightness``; blended with the clip's mean grey by
    ``contrast``; blended with each pixel's grey by ``saturation``; clipped to 0-255 and rounded."""
    x = frames.astype(np.float32) * brightness
    mean_grey = (x @ GREY_WEIGHTS).mean()
    x = mean_grey + contrast * (x - mean_grey)
    grey = (x @ GREY_WEIGHTS)[..., None]
    x = grey + saturation * (x - grey)
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


def transform_planes(planes, frame_size, draw=None, flow=False, crop="multiscale_corners", subsample=1):
    """Subsample, scale, flip and crop a stack of planes ``(H, W, C)`` uint8 to ``(frame_size, frame_size, C)``.

    ``draw`` None means test time (centre crop). With ``flow`` the even channels are x flow and are
    inverted on a flip. All channels get the same geometry. ``crop`` and ``subsample``: see the module
    docstring.
    """
    if subsample > 1:
        planes = planes[::subsample, ::subsample]
    if crop == "random":
        return _plain_crop(planes, frame_size, draw, flow)
    height, width = planes.shape[:2]
    short_side = short_side_for(frame_size)
    new_height, new_width = scaled_shape(height, width, min(height, width), short_side)
    planes = _resize(planes, new_height, new_width)
    if draw is None:
        y, x = crop_origins(new_height, new_width, frame_size)[0]
        return np.ascontiguousarray(planes[y : y + frame_size, x : x + frame_size])
    if draw.flip:
        planes = _flipped(planes, flow)
    side = short_side * CROP_SCALES_OVER_32[draw.scale] // 32
    y, x = crop_origins(new_height, new_width, side)[draw.position]
    return _resize(np.ascontiguousarray(planes[y : y + side, x : x + side]), frame_size, frame_size)


def _plain_crop(planes, frame_size, draw, flow):
    """A ``frame_size`` square of ``planes`` as they are: at ``draw.offset`` (flipped first when drawn so),
    or the centre for ``draw`` None. A frame smaller than the crop has its shorter side scaled up to it."""
    height, width = planes.shape[:2]
    if min(height, width) < frame_size:
        height, width = scaled_shape(height, width, min(height, width), frame_size)
        planes = _resize(planes, height, width)
    if draw is None:
        y, x = crop_origins(height, width, frame_size)[0]
    else:
        if draw.flip:
            planes = _flipped(planes, flow)
        y, x = (int(fraction * (room + 1))
                for fraction, room in zip(draw.offset, (height - frame_size, width - frame_size)))
    return np.ascontiguousarray(planes[y : y + frame_size, x : x + frame_size])


def _flipped(planes, flow):
    """``planes`` mirrored left-right; a flow stack's x planes (even channels) also inverted."""
    planes = planes[:, ::-1]
    if flow:
        planes = planes.copy()
        planes[..., 0::2] = 255 - planes[..., 0::2]
    return planes


def _resize(planes, height, width):
    """Bilinear resize of ``(H, W, C)`` uint8 planes to ``(height, width, C)``, any C.

    ``cv2.resize`` takes at most ``MAX_RESIZE_CHANNELS`` channels (OpenCV 5), so a longer stack (an
    RGB clip of 43 frames or more) is resized in chunks; each channel is resized on its own anyway,
    so the result is the same as one call.
    """
    if planes.shape[:2] == (height, width):
        return planes
    chunks = [
        cv2.resize(
            np.ascontiguousarray(planes[..., start : start + MAX_RESIZE_CHANNELS]),
            (width, height),
            interpolation=cv2.INTER_LINEAR,
        ).reshape(height, width, -1)
        for start in range(0, planes.shape[2], MAX_RESIZE_CHANNELS)
    ]
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks, axis=-1)


def transform_clip(frames, frame_size, draw=None, crop="multiscale_corners", subsample=1):
    """``transform_planes`` for an RGB clip ``(T, H, W, 3)`` -> ``(T, frame_size, frame_size, 3)``."""
    num_frames, height, width, _ = frames.shape
    planes = frames.transpose(1, 2, 0, 3).reshape(height, width, num_frames * 3)
    planes = transform_planes(planes, frame_size, draw, crop=crop, subsample=subsample)
    return planes.reshape(frame_size, frame_size, num_frames, 3).transpose(2, 0, 1, 3)


class BadVideoLog:
    """Thread-safe record of the clips skipped as bad: ``paths`` (distinct, first-seen order), ``count``."""

    def __init__(self):
        self._lock = threading.Lock()
        self._reasons = {}
        self.skips = 0

    def record(self, error):
        """Count one skip of ``error.path``; returns True the first time that path is seen."""
        with self._lock:
            self.skips += 1
            first = error.path not in self._reasons
            self._reasons.setdefault(error.path, error.reason)
            return first

    @property
    def paths(self):
        with self._lock:
            return list(self._reasons)

    @property
    def count(self):
        with self._lock:
            return len(self._reasons)

    def summary(self, shown=3):
        """One line: how many bad clips were skipped and the first few paths with reasons."""
        with self._lock:
            named = "; ".join(f"{path!r} ({reason})" for path, reason in list(self._reasons.items())[:shown])
            more = f"; and {len(self._reasons) - shown} more" if len(self._reasons) > shown else ""
            return f"skipped {len(self._reasons)} bad videos ({self.skips} skips in all): {named}{more}"


def bad_video_from_tf_error(exc):
    """The ``BadVideo`` carried by an error raised out of a ``make_dataset`` pipeline, or None."""
    if isinstance(exc, BadVideo):
        return exc
    return BadVideo.from_text(getattr(exc, "message", None) or str(exc))


@contextlib.contextmanager
def bad_videos_as_user_errors():
    """Turn what stops a tf.data pipeline and is the data's fault into a one-line UserError: a bad video
    (``on_bad_video: fail``) or a truncated or corrupt TFRecord file."""
    try:
        yield
    except tf.errors.DataLossError as error:
        reason = " ".join(str(error.message).split())[:200]
        raise UserError(f"a packed TFRecord file (data.packed) is truncated or corrupt ({reason}); "
                        "pack it again with python -m kerasflow.data pack") from None
    except (tf.errors.UnknownError, tf.errors.InvalidArgumentError) as error:
        bad = bad_video_from_tf_error(error)
        if bad is None:
            raise
        raise UserError(f"{bad}; re-encode or remove it, or set data.on_bad_video: skip to leave such videos "
                        "out") from None


class _BadVideoInPipeline(RuntimeError):
    """Raised inside ``tf.numpy_function``; its text carries the ``BadVideo`` marker through TF's wrapping."""


def load_example(item, inputs, training, seed, random_flip=True, clips=1, colour_jitter=0.0):
    """Decoded, augmented uint8 arrays of one video, one per ``InputSpec`` of ``inputs``, in order.

    A clip input gives ``(T, S, S, 3)``, a TV-L1 stack ``(S, S, 2K)`` (``InputSpec.shape``); every clip
    input is decoded from the same pass over the video. One generator seeded with ``seed`` draws the
    temporal sampling and the crop that all inputs share. With ``clips`` > 1 (test time) each array
    gains a leading axis of ``clips`` clips: evenly spaced windows or flow stacks (``clip_indices``).
    ``colour_jitter`` > 0: in training, the clips' colours change as ``CropDraw`` draws (TV-L1 stacks keep theirs).
    """
    rng = np.random.default_rng(seed)
    draw = CropDraw(rng, random_flip, inputs[0].crop, colour_jitter) if training else None
    clip_specs = [spec for spec in inputs if spec.is_clip]
    frames = []
    if clip_specs:
        def choose(count, rng):
            return [clip_indices(count, spec.frames, spec.sampling, spec.stride, training, rng, clip, clips)
                    for clip in range(clips) for spec in clip_specs]

        frames = _decoded(item, read_frames, item.source, choose, rng)
    arrays = []
    for spec in inputs:
        per_clip = []
        for clip in range(clips):
            if spec.is_clip:
                clip_frames = transform_clip(frames[clip * len(clip_specs) + clip_specs.index(spec)], spec.size, draw,
                                             spec.crop, spec.subsample)
                if draw is not None and draw.colour is not None:
                    clip_frames = jitter_colours(clip_frames, *draw.colour)
                per_clip.append(clip_frames)
                continue
            if item.flow_source is None:
                raise BadVideo(item.source, "has no flow_x folder (extract flow or pass flow_root)")
            stack = _decoded(item, read_flow_stack, item.flow_source, spec.frames, training, rng, clip, clips)
            per_clip.append(transform_planes(stack, spec.size, draw, flow=True, crop=spec.crop,
                                             subsample=spec.subsample))
        arrays.append(per_clip[0] if clips == 1 else np.stack(per_clip))
    return arrays


def _decoded(item, reader, *args):
    """``reader(*args)``, with an OpenCV, file or value error from decoding ``item`` turned into ``BadVideo``."""
    try:
        return reader(*args)
    except (cv2.error, OSError, ValueError) as error:
        first_line = str(error).splitlines()[0] if str(error) else ""
        raise BadVideo(item.source, f"{type(error).__name__}: {first_line}") from error


def _check_options(inputs, on_bad_video, index):
    if not inputs:
        raise UserError("a dataset needs at least one model input")
    if on_bad_video not in BAD_VIDEO_POLICIES:
        raise UserError(f"on_bad_video {on_bad_video!r} invalid; use one of {', '.join(BAD_VIDEO_POLICIES)}")
    if not index.items:
        raise UserError(f"{index.dataset} {index.subset} index has no clips")
    if any(not spec.is_clip for spec in inputs) and all(item.flow_source is None for item in index.items):
        raise UserError(
            f"the flow stream needs flow_x/flow_y folders but no {index.dataset} {index.subset} clip has one; "
            "extract TV-L1 flow (python -m kerasflow.extract_flow) and set flow_root"
        )


def make_dataset(
    index,
    inputs,
    *,
    batch_size=32,
    training=False,
    seed=0,
    on_bad_video="skip",
    bad_videos=None,
    drop_remainder=None,
    shuffle=None,
    random_flip=True,
    clips=1,
    colour_jitter=0.0,
):
    """A ``tf.data.Dataset`` of ``(inputs, label, weight)`` batches for a ``VideoIndex``.

    ``inputs`` lists the model's ``InputSpec``s; each batch's inputs are a dict by their names: an RGB
    clip uint8 ``(B, T, S, S, 3)``, a TV-L1 stack uint8 ``(B, S, S, 2K)``: raw frames, which the
    models normalise themselves (``kerasflow.layers.FrameNormalization``).
    The label is int32 ``(B,)``; the weight float32 ``(B,)`` is 1, or 0 for a bad clip that was
    skipped (its inputs are zeros), so Keras' loss and metrics leave it out and every epoch has the
    same, known number of batches. ``shuffle`` and ``drop_remainder`` default to ``training``.
    ``random_flip=False`` turns the horizontal flip off; ``colour_jitter`` > 0 jitters each training clip's
    colours (``CropDraw``, ``jitter_colours``). The same ``seed`` gives the same sequence of
    batches (each pass over the dataset, i.e. each epoch, shuffles and augments differently). Bad clips
    are logged and skipped (recorded in ``bad_videos``) or stop the iteration with an error
    ``bad_video_from_tf_error`` understands. ``clips`` > 1 (test only) gives every input a clips axis
    after the batch axis, ``(B, clips, ...)``, for ``metrics.evaluate`` to average.
    """
    if clips > 1 and training:
        raise ValueError("several clips per video are a test-time protocol; training samples one")
    inputs = tuple(inputs)
    _check_options(inputs, on_bad_video, index)
    bad_videos = BadVideoLog() if bad_videos is None else bad_videos
    shuffle = training if shuffle is None else shuffle
    drop_remainder = training if drop_remainder is None else drop_remainder
    items = list(index.items)
    shapes = {spec.name: spec.shape if clips == 1 else (clips, *spec.shape) for spec in inputs}

    def decode(position, element_seed):
        item = items[int(position)]
        try:
            arrays = load_example(item, inputs, training, int(element_seed), random_flip, clips, colour_jitter)
        except BadVideo as error:
            if on_bad_video == "fail":
                raise _BadVideoInPipeline(error.marker()) from error
            if bad_videos.record(error):
                logger.warning("skipping %s (re-encode or remove it)", error)
            return (*[np.zeros(shapes[spec.name], np.uint8) for spec in inputs], np.float32(0.0))
        return (*arrays, np.float32(1.0))

    def decode_in_graph(position, element_seed, label):
        outputs = tf.numpy_function(
            decode, [position, element_seed], [tf.uint8] * len(inputs) + [tf.float32], stateful=False
        )
        for output, spec in zip(outputs, inputs):
            output.set_shape(shapes[spec.name])
        outputs[-1].set_shape(())
        return {spec.name: output for spec, output in zip(inputs, outputs)}, label, outputs[-1]

    labels = np.array([item.label for item in items], np.int32)
    dataset = tf.data.Dataset.from_tensor_slices((np.arange(len(items), dtype=np.int64), labels))
    if shuffle:
        dataset = dataset.shuffle(len(items), seed=seed, reshuffle_each_iteration=True)
    dataset = with_element_seeds(dataset, seed)
    dataset = dataset.map(
        lambda example, element_seed: decode_in_graph(example[0], element_seed, example[1]),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def with_element_seeds(dataset, seed):
    """Pairs each element with a non-negative int64 seed: a fixed sequence per pass, new on every pass."""
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).map(_non_negative)
    return tf.data.Dataset.zip((dataset, seeds))


def _non_negative(value):
    return tf.math.floormod(value, tf.constant(2**62, tf.int64))
