"""Live prediction: a sliding window over the frames of a camera, a stream URL or a video file.

Frames are read on their own thread, cropped as the test set is (shorter side scaled, centre square)
and kept in a window of ``window`` frames; every ``hop`` frames the window is sampled for each model
input as a test video of ``window`` frames would be (``clip_indices``) and the model runs on it. A
live source (a camera index or a URL) does not wait for the model: when several windows end while the
model is busy, only the newest runs and the others are counted as dropped. A video file waits for the
model, so every window runs, unless ``realtime`` replays it at its frame rate like a camera.
"""

import contextlib
import dataclasses
import errno
import os
import queue
import shutil
import threading
import time
from collections import deque

import cv2
import numpy as np

from kerasflow.atomic import atomic_path
from kerasflow.data.pipeline import transform_clip
from kerasflow.data.video import clip_indices
from kerasflow.errors import UserError
from kerasflow.prediction import softmax, top_k

FALLBACK_FPS = 30.0  # for sources that do not state a frame rate
MAX_WINDOW = 3600  # frames a window may hold (two minutes at 30 fps), all kept in memory
FULL_DISK_BYTES = 1 << 20  # a folder with less room left is taken as full when a written video is incomplete
_END = object()


def default_window(inputs):
    """Frames the longest input spans: ``(T - 1) * stride + 1`` for a contiguous clip, ``T`` for one
    spread over segments."""
    return max(spec.frames if spec.sampling == "segments" else (spec.frames - 1) * spec.stride + 1
               for spec in inputs)


class NothingPredicted(UserError):
    """The source ended before one window: ``report`` is what was read (``stream``'s report dict)."""

    def __init__(self, message, report):
        super().__init__(message)
        self.report = report


def check_window(window, inputs):
    """Refuse (``ValueError``) a window shorter than the frames the model's inputs span (it would be fed
    repeated frames), or longer than ``MAX_WINDOW``."""
    needed = default_window(inputs)
    if not needed <= window <= MAX_WINDOW:
        raise ValueError(f"`window` must be from {needed} (the frames this model's input spans: a shorter window "
                         f"feeds it repeated frames) to {MAX_WINDOW} (the frames a window may hold in memory). "
                         f"Received: window={window}")


def is_live(source):
    """A camera index (digits) or a URL is live; anything else is a file."""
    return str(source).isdigit() or "://" in str(source)


def open_source(source):
    """``(capture, frames per second)`` of a camera index, URL or video file OpenCV can open."""
    capture = cv2.VideoCapture(int(source) if str(source).isdigit() else str(source))
    if not capture.isOpened():
        capture.release()
        what = "camera" if str(source).isdigit() else "stream" if "://" in str(source) else "video file"
        raise UserError(f"OpenCV cannot open the {what} {source}; check the camera index, URL or path")
    fps = capture.get(cv2.CAP_PROP_FPS)
    return capture, (fps if 0 < fps < 1000 else FALLBACK_FPS)


def window_inputs(frames, inputs):
    """``{input name: uint8 (1, T, S, S, 3)}`` of a window ``frames`` (``(W, S, S, 3)``, already cropped),
    sampled for each input as ``clip_indices`` samples a test video of ``W`` frames."""
    count = len(frames)
    return {spec.name: frames[clip_indices(count, spec.frames, spec.sampling, spec.stride)][None]
            for spec in inputs}


@dataclasses.dataclass
class Window:
    """One window the model ran on: frames ``start .. end`` (inclusive) of the source, ``time`` in seconds
    (of the source for a file, since the start for a live source), ``predictions`` (top-k) and the
    model's ``milliseconds``."""

    index: int
    start: int
    end: int
    time: float
    predictions: list
    milliseconds: float


class StreamReader(threading.Thread):
    """Reads ``capture`` into ``frames`` (a queue of ``(index, seconds, RGB frame)``), then ``_END``.

    ``bounded``: the queue holds a few frames and reading waits for the consumer (a file replayed as
    fast as the model goes); otherwise reading never waits (a live source). ``pace``: frames per
    second to replay a file at (None: as fast as it decodes)."""

    def __init__(self, capture, bounded, pace=None):
        super().__init__(daemon=True)
        self.capture, self.pace = capture, pace
        self.frames = queue.Queue(maxsize=4 if bounded else 0)
        self.stopping = threading.Event()

    def run(self):
        start, index = time.perf_counter(), 0
        try:
            while not self.stopping.is_set():
                ok, frame = self.capture.read()
                if not ok or frame is None:
                    break
                if self.pace:
                    time.sleep(max(0.0, start + index / self.pace - time.perf_counter()))
                self._put((index, time.perf_counter() - start, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)))
                index += 1
        finally:
            self._put(_END)

    def _put(self, item):
        while not self.stopping.is_set():
            try:
                return self.frames.put(item, timeout=0.1)
            except queue.Full:
                continue

    def take(self, all_available):
        """The next frames: one (waiting for it), plus with ``all_available`` every frame already read."""
        items = [self.frames.get()]
        while all_available and items[-1] is not _END:
            try:
                items.append(self.frames.get_nowait())
            except queue.Empty:
                break
        return items


def annotate(frame, label):
    """``frame`` (RGB, uint8) with ``label`` written at its top left on a dark band."""
    frame = frame.copy()
    height = max(18, frame.shape[0] // 14)
    scale = height / 30
    cv2.rectangle(frame, (0, 0), (frame.shape[1], height + 6), (0, 0, 0), thickness=-1)
    cv2.putText(frame, label, (4, height), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                max(1, round(2 * scale)), cv2.LINE_AA)
    return frame


class VideoOut:
    """Writes annotated RGB frames to the ``.mp4`` (``mp4v``) ``path`` at ``fps``, opened on the first
    frame; ``shown`` is the path messages name (``path`` is a temporary file until ``atomic_path`` renames it)."""

    def __init__(self, path, fps, shown=None):
        self.path, self.fps, self.shown, self.writer, self.written = str(path), fps, shown or str(path), None, 0

    def write(self, frame):
        if self.writer is None:
            self.writer = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                          (frame.shape[1], frame.shape[0]))
            if not self.writer.isOpened():
                raise UserError(f"OpenCV cannot write the video {self.shown}; give a path ending in .mp4 in a "
                                "writable folder")
        self.writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.written += 1

    def close(self):
        if self.writer is not None:
            self.writer.release()

    def check(self):
        """Raise when the closed video does not hold every frame written (OpenCV only logs a failed
        write): an ``OSError`` ENOSPC when the disk is full (``atomic_path`` names it in one line),
        else a ``UserError``."""
        capture = cv2.VideoCapture(self.path)
        readable = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
        capture.release()
        if readable == self.written:
            return
        if shutil.disk_usage(os.path.dirname(os.path.abspath(self.path))).free < FULL_DISK_BYTES:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.shown)
        raise UserError(f"OpenCV wrote {readable} of the {self.written} frames of the video {self.shown} readably; "
                        "the incomplete video was removed: check the folder, or give another path")


def stream(predictor, source, *, window=None, hop=None, top=5, realtime=False, out=None, on_window=None):
    """Run ``predictor`` (``kerasflow.export.predictors``) over ``source`` window by window.

    Returns the report dict: ``source``, ``fps``, ``window``, ``hop``, ``frames`` read, ``windows`` (one
    dict per window the model ran on: ``index``, ``start``, ``end``, ``time``, ``predictions`` with
    ``class`` and ``probability``, ``milliseconds``) and ``dropped`` (windows skipped because the model
    was busy). ``on_window(Window)`` is called as each window is predicted; ``out`` writes the video with
    the current top-1 drawn on each frame (atomically; a video OpenCV could not write whole, e.g. on a
    full disk, is a ``UserError`` and leaves no file). A window the model cannot use (``check_window``)
    is a ``ValueError``; a source that ends before one window raises ``NothingPredicted``.
    """
    info = predictor.info
    if not all(spec.is_clip for spec in info.inputs):
        raise UserError(f"streaming needs a model that takes RGB frames; this {info.kind} model reads TV-L1 optical "
                        "flow, which is extracted offline (python -m kerasflow.extract_flow): predict files with "
                        "their flow folder instead")
    window = window or default_window(info.inputs)
    hop = hop or max(1, window // 2)
    first = info.inputs[0]
    check_window(window, info.inputs)
    capture, fps = open_source(source)
    with contextlib.ExitStack() as stack:
        stack.callback(capture.release)
        temporary = stack.enter_context(atomic_path(out, suffix=".mp4")) if out else None
        writer = VideoOut(temporary, fps, shown=str(out)) if out else None
        live = is_live(source)
        reader = StreamReader(capture, bounded=not (live or realtime), pace=fps if realtime and not live else None)
        recent = deque(maxlen=window)
        windows, dropped, frames_read, label = [], 0, 0, "..."
        reader.start()
        try:
            while True:
                items = reader.take(all_available=live or realtime)
                arrived, due = [], None
                for index, seconds, frame in (item for item in items if item is not _END):
                    recent.append(transform_clip(frame[None], first.size, crop=first.crop,
                                                 subsample=first.subsample)[0])
                    arrived.append((index, frame))
                    frames_read = index + 1
                    if frames_read >= window and (frames_read - window) % hop == 0:
                        dropped += due is not None  # an older window of this batch the model never got to
                        due = (index, seconds, np.stack(recent))
                previous = label
                if due is not None:
                    end, seconds, frames = due
                    start = time.perf_counter()
                    logits = np.asarray(predictor(window_inputs(frames, info.inputs)), np.float64)[0]
                    milliseconds = 1000 * (time.perf_counter() - start)
                    predictions = top_k(softmax(logits), list(info.class_names), top)
                    result = Window(len(windows), end - window + 1, end, seconds if live else end / fps,
                                    predictions, milliseconds)
                    windows.append(result)
                    label = f"{predictions[0]['class']} {predictions[0]['probability']:.2f}"
                    if on_window is not None:
                        on_window(result)
                for index, frame in arrived if writer else ():
                    writer.write(annotate(frame, label if due is not None and index >= due[0] else previous))
                if items[-1] is _END:
                    break
        finally:
            reader.stopping.set()
            if writer:
                writer.close()
        report = {"source": str(source), "fps": fps, "window": window, "hop": hop, "frames": frames_read,
                  "windows": [dataclasses.asdict(result) for result in windows], "dropped": dropped}
        if not windows:
            raise NothingPredicted(_nothing_predicted(source, frames_read, window, default_window(info.inputs)),
                                   report)
        if writer:
            writer.check()
    return report


def _nothing_predicted(source, frames_read, window, needed):
    advice = (f"give a window of {needed} to {frames_read} frames" if frames_read >= needed
              else f"this model needs at least {needed} frames: give a longer source")
    return (f"the source {source} ended after {frames_read} frames, before one window of {window} frames: "
            f"nothing was predicted; {advice}")
