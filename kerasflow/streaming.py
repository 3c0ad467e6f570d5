"""Live prediction: a sliding window over the frames of a camera, a stream URL or a video file.

Frames are read on their own thread, cropped as the test set is (shorter side scaled, centre square)
and kept in a window of ``window`` frames; every ``hop`` frames the window is sampled for each model
input as a test video of ``window`` frames would be (``clip_indices``) and the model runs on it. A
live source (a camera index or a URL) does not wait for the model: when several windows end while the
model is busy, only the newest runs and the others are counted as dropped. A video file waits for the
model, so every window runs, unless ``realtime`` replays it at its frame rate like a camera.
"""

import dataclasses
import queue
import threading
import time
from collections import deque

import cv2
import numpy as np

from kerasflow.data.pipeline import transform_clip
from kerasflow.data.video import clip_indices
from kerasflow.errors import UserError

FALLBACK_FPS = 30.0  # for sources that do not state a frame rate
_END = object()


def default_window(inputs):
    """Frames the longest input spans: ``(T - 1) * stride + 1`` for a contiguous clip, ``T`` for one
    spread over segments."""
    return max(spec.frames if spec.sampling == "segments" else (spec.frames - 1) * spec.stride + 1
               for spec in inputs)


def is_live(source):
    """A camera index (digits) or a URL is live; anything else is a file."""
    return str(source).isdigit() or "://" in str(source)


def open_source(source):
    """``(capture, frames per second)`` of a camera index, URL or video file OpenCV can open."""
    capture = cv2.VideoCapture(int(source) if str(source).isdigit() else str(source))
    if not capture.isOpened():
        capture.release()
        what = "camera" if str(source).isdigit() else "stream" if "://" in str(source) else "video file"
        raise UserError(f"--stream {source}: OpenCV cannot open this {what}; check the camera index, URL or path")
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
    """Writes annotated RGB frames to an ``.mp4`` (``mp4v``) at ``fps``, opened on the first frame."""

    def __init__(self, path, fps):
        self.path, self.fps, self.writer = str(path), fps, None

    def write(self, frame):
        if self.writer is None:
            self.writer = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                          (frame.shape[1], frame.shape[0]))
            if not self.writer.isOpened():
                raise UserError(f"--out {self.path}: OpenCV cannot write this video; give a path ending in .mp4 "
                                "in a writable folder")
        self.writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))

    def close(self):
        if self.writer is not None:
            self.writer.release()


def stream(predictor, source, *, window=None, hop=None, top=5, realtime=False, out=None, on_window=None):
    """Run ``predictor`` (``kerasflow.export.runtime``) over ``source`` window by window.

    Returns the report dict: ``source``, ``fps``, ``window``, ``hop``, ``frames`` read, ``windows`` (one
    dict per window the model ran on: ``index``, ``start``, ``end``, ``time``, ``predictions`` with
    ``class`` and ``probability``, ``milliseconds``) and ``dropped`` (windows skipped because the model
    was busy). ``on_window(Window)`` is called as each window is predicted; ``out`` writes the video with
    the current top-1 drawn on each frame.
    """
    from kerasflow.predict import softmax, top_k

    info = predictor.info
    if not all(spec.is_clip for spec in info.inputs):
        raise UserError(f"--stream needs a model that takes RGB frames; this {info.kind} model reads TV-L1 optical "
                        "flow, which is extracted offline (python -m kerasflow.extract_flow): predict files with "
                        "--flow-dir instead")
    window = window or default_window(info.inputs)
    hop = hop or max(1, window // 2)
    first = info.inputs[0]
    capture, fps = open_source(source)
    live = is_live(source)
    reader = StreamReader(capture, bounded=not (live or realtime), pace=fps if realtime and not live else None)
    writer = VideoOut(out, fps) if out else None
    recent = deque(maxlen=window)
    windows, dropped, frames_read, label = [], 0, 0, "..."
    reader.start()
    try:
        while True:
            items = reader.take(all_available=live or realtime)
            arrived, due = [], None
            for index, seconds, frame in (item for item in items if item is not _END):
                recent.append(transform_clip(frame[None], first.size, crop=first.crop, subsample=first.subsample)[0])
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
        capture.release()
        if writer:
            writer.close()
    return {"source": str(source), "fps": fps, "window": window, "hop": hop, "frames": frames_read,
            "windows": [dataclasses.asdict(result) for result in windows], "dropped": dropped}
