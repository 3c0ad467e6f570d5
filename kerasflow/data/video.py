"""Decoding clips with OpenCV: video files and frame folders, uniform temporal sampling.

Every function returns plain numpy ``uint8`` arrays in RGB order and raises ``BadVideo`` (a
``UserError`` naming the path) for anything a user's data can get wrong: a file that does not open,
has no frames, stops decoding part-way, or is too short for the request.
"""

import json
import logging
import os
import re
import threading
from pathlib import Path

import cv2
import numpy as np

from kerasflow.errors import UserError

logger = logging.getLogger("kerasflow.data")

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v", ".wmv", ".flv")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
BAD_VIDEO_POLICIES = ("skip", "fail")  # on_bad_video: leave a bad clip out, or stop with BadVideo

_COPY_SUFFIX = re.compile(r" \(\d+\)$")  # "rgb0001 (1).png": a duplicate left by a file manager
_MARKER = re.compile(r"<kerasflow-bad-video>(.*?)</kerasflow-bad-video>", re.DOTALL)

# Frames that really decode, for the video files whose header count is wrong or absent, so that
# their clips are not decoded twice on every epoch. Shared by the pipeline's decoding threads.
_frame_counts = {}
_frame_counts_lock = threading.Lock()


class BadVideo(UserError):
    """A clip that cannot be used: ``path`` names it, ``reason`` says why (one line)."""

    def __init__(self, path, reason):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"bad video {self.path!r}: {reason}")

    def marker(self):
        """This error as a tagged string that survives TensorFlow's wrapping (see ``from_text``)."""
        payload = json.dumps({"path": self.path, "reason": self.reason})
        return f"<kerasflow-bad-video>{payload}</kerasflow-bad-video>"

    @classmethod
    def from_text(cls, text):
        """The ``BadVideo`` whose ``marker()`` appears in ``text``, or None."""
        match = _MARKER.search(text)
        if match is None:
            return None
        payload = json.loads(match.group(1))
        return cls(payload["path"], payload["reason"])


def is_video_file(path):
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def list_frame_files(folder, prefix=""):
    """Image files of a frame folder whose names start with ``prefix``, in numeric order.

    Hidden files (``.DS_Store``) and file-manager duplicates (``x (1).png``) are ignored, and so is a
    second file of the same stem (``image_00001.jpg`` beside ``image_00001.png``: the first extension
    in ``IMAGE_EXTENSIONS`` order is kept). Sorted by the last number in the name, then by the name,
    so ``img_2.jpg`` comes before ``img_10.jpg``.
    """
    by_stem = {}  # stem -> ((extension rank, name), path)
    with os.scandir(folder) as entries:
        for entry in entries:
            stem, extension = os.path.splitext(entry.name)
            if (
                entry.name.startswith(".")
                or extension.lower() not in IMAGE_EXTENSIONS
                or not stem.startswith(prefix)
                or _COPY_SUFFIX.search(stem)
                or not entry.is_file()
            ):
                continue
            preference = (IMAGE_EXTENSIONS.index(extension.lower()), entry.name)
            if stem not in by_stem or preference < by_stem[stem][0]:
                by_stem[stem] = (preference, entry.path)
    return sorted((path for _, path in by_stem.values()), key=_frame_sort_key)


def _frame_sort_key(path):
    name = os.path.basename(path)
    numbers = re.findall(r"\d+", os.path.splitext(name)[0])
    return (int(numbers[-1]) if numbers else -1, name)


def frame_folder_files(folder):
    """Frame files of a clip folder; a folder holding only an ``rgb/`` subfolder (GTEA61 course copy) reads that."""
    files = list_frame_files(folder)
    if not files and os.path.isdir(os.path.join(folder, "rgb")):
        files = list_frame_files(os.path.join(folder, "rgb"))
    return files


def scaled_shape(height, width, shorter, short_side):
    """(height, width) after scaling the shorter side to ``short_side`` (PIL ``Scale``: int(short_side * long / short)).

    Integer arithmetic only, so it serves Python ints and TF int tensors alike.
    """
    return short_side * height // shorter, short_side * width // shorter


def sample_indices(num_frames_available, num_samples, training=False, rng=None):
    """Indices of ``num_samples`` frames spread uniformly over ``num_frames_available`` (int64, sorted).

    Test mode takes the start of each of ``num_samples`` equal segments,
    ``floor(linspace(0, N, T, endpoint=False))`` (EgoRCNN's rule), so N=10, T=5 gives [0, 2, 4, 6, 8].
    Training mode draws one uniform position inside each segment instead. A clip shorter than
    ``num_samples`` repeats frames (N=3, T=5 gives [0, 0, 1, 1, 2] in test mode).
    """
    if num_frames_available < 1 or num_samples < 1:
        raise ValueError("`num_frames_available` and `num_samples` must be >= 1. Received: "
                         f"num_frames_available={num_frames_available}, num_samples={num_samples}")
    offsets = np.zeros(num_samples)
    if training:
        rng = np.random.default_rng() if rng is None else rng
        offsets = rng.random(num_samples)
    positions = (np.arange(num_samples) + offsets) * num_frames_available / num_samples
    return np.minimum(np.floor(positions).astype(np.int64), num_frames_available - 1)


def window_start(last_start, training=False, rng=None, clip=0, clips=1):
    """Where a window starts among ``0 .. last_start``: uniformly drawn in training; in test the centre,
    or with ``clips`` windows the ``clip``-th of ``clips`` evenly spaced starts (first and last included)."""
    if training:
        rng = np.random.default_rng() if rng is None else rng
        return int(rng.integers(0, last_start + 1))
    if clips == 1:
        return last_start // 2
    return int(np.floor(np.linspace(0, last_start, clips)[clip]))


def clip_indices(num_frames_available, frames, sampling="segments", stride=1, training=False, rng=None, clip=0,
                 clips=1):
    """Indices of the ``frames`` frames of one clip of a video of ``num_frames_available`` frames.

    ``segments``: spread over the whole video (``sample_indices``; every test clip is the same).
    ``contiguous``: ``frames`` consecutive frames ``stride`` apart, the representation-flow code's clips:
    a window of ``(frames - 1) * stride + 1`` frames at ``window_start``; a shorter video repeats its
    last frame.
    """
    if sampling == "segments":
        return sample_indices(num_frames_available, frames, training, rng)
    last_start = max(num_frames_available - ((frames - 1) * stride + 1), 0)
    start = window_start(last_start, training, rng, clip, clips)
    return np.minimum(start + np.arange(frames, dtype=np.int64) * stride, num_frames_available - 1)


def read_clip(source, num_frames, training=False, rng=None):
    """``num_frames`` sampled RGB frames (``sample_indices``) of a video file or frame folder, uint8
    ``(T, H, W, 3)``."""
    return read_frames(source, lambda count, rng: [sample_indices(count, num_frames, training, rng)], rng)[0]


def read_frames(source, choose, rng=None):
    """Clips of a video file or frame folder, decoding each frame they share once.

    ``choose(frame_count, rng)`` returns a list of index arrays (one per clip) for a video of
    ``frame_count`` frames; the result is the list of uint8 RGB clips ``(T, H, W, 3)`` in that order.
    Frames are counted by what actually decodes: when a container overstates its frame count, the
    clips are chosen again, with the same random draws, over the frames that really exist.
    """
    path = str(source)
    if os.path.isdir(path):
        return _read_folder_frames(path, choose, rng)
    if not os.path.isfile(path):
        raise BadVideo(path, "file does not exist")
    return _read_video_frames(path, choose, rng)


def _split_clips(decoded, index_lists):
    return [_stack_rgb([decoded[int(index)] for index in indices]) for indices in index_lists]


def _read_folder_frames(folder, choose, rng):
    files = frame_folder_files(folder)
    if not files:
        raise BadVideo(folder, "frame folder holds no jpg/png frames")
    index_lists = choose(len(files), rng)
    decoded = {}
    for index in np.unique(np.concatenate(index_lists)):
        image = cv2.imread(files[index], cv2.IMREAD_COLOR)
        if image is None:
            raise BadVideo(folder, f"breaks mid-way: frame file {os.path.basename(files[index])!r} does not decode")
        decoded[int(index)] = image
    return _split_clips(decoded, index_lists)


def _stack_rgb(bgr_frames):
    height, width = bgr_frames[0].shape[:2]
    frames = [
        frame if frame.shape[:2] == (height, width) else cv2.resize(frame, (width, height))
        for frame in bgr_frames
    ]
    return np.stack([cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) for frame in frames])


def open_video(path):
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        capture.release()
        raise BadVideo(path, "cannot be opened (empty, corrupt or an unsupported codec)")
    return capture


def _decode_frames_at(capture, indices):
    """({index: BGR frame}, None), or (None, frames decoded before the stream ended)."""
    wanted = set(int(index) for index in indices)
    decoded = {}
    for position in range(max(wanted) + 1):
        if position in wanted:
            ok, frame = capture.read()
            ok = ok and frame is not None
            if ok:
                decoded[position] = frame
        else:
            ok = capture.grab()
        if not ok:
            return None, position
    return decoded, None


def _count_frames(capture):
    count = 0
    while capture.grab():
        count += 1
    return count


def count_video_frames(path):
    """Number of frames of a video file that really decode (reads the whole stream)."""
    capture = open_video(path)
    try:
        return _count_frames(capture)
    finally:
        capture.release()


def _sample_video(path, count, choose, rng):
    """Open ``path`` once and decode the clips ``choose`` picks over ``count`` frames (None: the header's).

    Returns (clips, None, stated), or (None, frames that really decode, stated) when the stream ends
    first or the header states no count; ``stated`` is the header's count.
    """
    capture = open_video(path)
    try:
        stated = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        count = stated if count is None else count
        if count <= 0:
            return None, _count_frames(capture), stated
        index_lists = choose(count, rng)
        decoded, ended_at = _decode_frames_at(capture, np.concatenate(index_lists))
        return (None if decoded is None else _split_clips(decoded, index_lists)), ended_at, stated
    finally:
        capture.release()


def _remember_frame_count(path, count, stated):
    with _frame_counts_lock:
        if path in _frame_counts:
            return
        _frame_counts[path] = count
    if stated > 0:
        logger.warning(
            "video %r breaks mid-way: its header states %d frames but only %d decode; sampling over those",
            path, stated, count,
        )


def remember_frame_count(path, count):
    """Record that only ``count`` frames of the video file ``path`` decode (its header overstates or lacks
    the count), so that the pipelines sample its clips over those without decoding it twice.

    ``path`` must be spelled as the pipelines get it (``VideoItem.source``). A count already known stays.
    """
    with _frame_counts_lock:
        _frame_counts.setdefault(str(path), int(count))


def _read_video_frames(path, choose, rng):
    rng = np.random.default_rng() if rng is None else rng
    replay = rng.bit_generator.state  # a second choice draws the same numbers, as a known count would
    with _frame_counts_lock:
        known = _frame_counts.get(path)
    clips, decoded, stated = _sample_video(path, known, choose, rng)
    if clips is None and known is None:
        if decoded == 0:
            raise BadVideo(path, "no frame decodes")
        _remember_frame_count(path, decoded, stated)
        known = decoded
        rng.bit_generator.state = replay
        clips, decoded, _ = _sample_video(path, known, choose, rng)
    if clips is None:
        raise BadVideo(path, f"breaks mid-way: decoding stopped at frame {decoded} of {known}")
    return clips


def iter_clip_frames(source):
    """Every frame of a video file or frame folder in order, as uint8 RGB ``(H, W, 3)``."""
    path = str(source)
    if os.path.isdir(path):
        files = frame_folder_files(path)
        if not files:
            raise BadVideo(path, "frame folder holds no jpg/png frames")
        for file in files:
            image = cv2.imread(file, cv2.IMREAD_COLOR)
            if image is None:
                raise BadVideo(path, f"breaks mid-way: frame file {os.path.basename(file)!r} does not decode")
            yield cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return
    if not os.path.isfile(path):
        raise BadVideo(path, "file does not exist")
    capture = open_video(path)
    try:
        count = 0
        while True:
            ok, frame = capture.read()
            if not ok or frame is None:
                break
            count += 1
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        if count == 0:
            raise BadVideo(path, "no frame decodes")
    finally:
        capture.release()
