"""Checking a dataset before training: every video opens, has frames and a size, and has its flow.

``check_items`` looks at each clip the way the pipelines will use it, for a model's inputs
(``InputSpec``s): for an RGB clip input the video file opens, states or really has a positive frame
count, and its first and last frames decode (a frame folder: it holds frames, and its first and last
frame files decode); for a TV-L1 stack input its ``flow_x`` folder holds at least ``frames`` flow
frames and its ``flow_y`` twin the matching files. Videos are probed in parallel threads (OpenCV
releases the GIL) with a progress bar on stderr.

A video whose header overstates its frame count (a truncated file) is usable over the frames that
really decode: that count is handed to ``kerasflow.data.video`` so the pipelines do not count it again.

The results of the clip checks are cached in a JSON file (``default_cache_file``), keyed by absolute
path and reused while the file's size and mtime (a frame folder's number of frames and newest mtime)
are unchanged, so a re-run on an unchanged dataset opens no video. Flow checks are folder listings,
cheaper than the stat calls a cache entry would need, and are made afresh each time.

``check_dataset`` checks a train and a test index and, by ``data.on_bad_video``, stops with one line
naming the bad files (``fail``) or leaves them out with one summary line (``skip``); a line also names
the videos whose header overstates their frame count (header vs decodable count);
``check_recipe_data`` does it for the inputs of every stage a recipe trains (``fit`` and
``python -m kerasflow.data check``). Nothing here imports TensorFlow.
"""

import contextlib
import dataclasses
import json
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple, Optional

import cv2
from tqdm import tqdm

from kerasflow.atomic import write_json
from kerasflow.data.flow_files import flow_y_file, flow_y_folder, list_flow_x_files
from kerasflow.data.video import (
    BAD_VIDEO_POLICIES,
    BadVideo,
    count_video_frames,
    frame_folder_files,
    open_video,
    remember_frame_count,
)
from kerasflow.errors import UserError

logger = logging.getLogger("kerasflow.data")

CACHE_NAME = "video-check.json"
CACHE_VERSION = 1
DEFAULT_LIMIT = 10  # bad files named one by one in a message; the rest are counted
NO_FLOW_FOLDER = "has no flow_x folder (extract flow or pass flow_root)"


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What the check found out about one clip (``None``: not checked, or not known).

    Attributes:
        frames: frames the pipelines sample over (a truncated file: those that really decode).
        height, width: size of the first frame in pixels.
        stated: the frame count a video file's header states (None for a frame folder).
        flow_frames: ``flow_x`` frames of the clip's flow folder (TV-L1 inputs).
        reason: why the clip cannot be used (one line), or None when it can.
        cached: the clip check's result came from the cache.
    """

    frames: Optional[int] = None
    height: Optional[int] = None
    width: Optional[int] = None
    stated: Optional[int] = None
    flow_frames: Optional[int] = None
    reason: Optional[str] = None
    cached: bool = False


@dataclasses.dataclass
class CheckResult:
    """``good``: the usable ``VideoItem``s in input order; ``bad``: ``(source, reason)`` of the others;
    ``info``: ``VideoInfo`` by ``source``; ``seconds`` the check took; ``cached``: clips whose result
    came from the cache; ``short``: ``(source, header frames, decodable frames)`` of the usable video
    files whose header states more frames than decode."""

    good: list
    bad: list
    info: dict
    seconds: float
    cached: int
    short: list = dataclasses.field(default_factory=list)


class DatasetCheck(NamedTuple):
    """``check_dataset``'s result: the indexes without their bad clips, the one-line summary of what was
    left out (None when nothing was), and ``short``: ``(source, header frames, decodable frames)`` of
    each usable video whose header overstates its frames, with ``short_note``, the line that says so
    (None when none does)."""

    train: object
    test: object
    summary: Optional[str]
    short: tuple = ()
    short_note: Optional[str] = None


def default_cache_file():
    """``$KERASFLOW_CACHE_DIR/video-check.json``, else under ``$XDG_CACHE_HOME/kerasflow``, else
    ``~/.cache/kerasflow``."""
    folder = os.environ.get("KERASFLOW_CACHE_DIR")
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = os.path.join(base, "kerasflow")
    return os.path.join(folder, CACHE_NAME)


def _load_cache(path):
    """The entries of the cache file ``path``; an absent, unreadable, corrupt or outdated one is empty."""
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except (OSError, ValueError):
        return {}
    if (not isinstance(data, dict) or data.get("version") != CACHE_VERSION
            or data.get("opencv") != cv2.__version__ or not isinstance(data.get("entries"), dict)):
        return {}
    return data["entries"]


def _save_cache(path, entries):
    """Write the cache atomically; a folder that cannot be written only costs the next run its speed."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        write_json(path, {"version": CACHE_VERSION, "opencv": cv2.__version__, "entries": entries})
    except (OSError, UserError) as error:
        logger.debug("cannot write the video check cache %s: %s", path, error)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _valid_entry(entry):
    """A cache entry holds a reason, or a positive frame count and a size."""
    if not isinstance(entry, dict):
        return False
    if "bad" in entry:
        return isinstance(entry["bad"], str)
    return (all(_is_int(entry.get(key)) and entry[key] > 0 for key in ("frames", "height", "width"))
            and _is_int(entry.get("stated", 0)))


@dataclasses.dataclass(frozen=True)
class _Needs:
    """What the inputs need of a clip: a decodable clip, and a TV-L1 stack of ``stack`` frames (0: none)."""

    clip: bool
    stack: int

    @classmethod
    def of(cls, inputs):
        inputs = list(inputs)
        if not inputs:
            raise ValueError("checking videos needs at least one model input")
        return cls(any(spec.is_clip for spec in inputs),
                   max((spec.frames for spec in inputs if not spec.is_clip), default=0))


def _signature(path):
    """``(size, mtime_ns, frame files)`` of a video file (files None) or a frame folder (size: its number
    of frames; mtime: the newest of the frames and their folder); None when the path does not exist."""
    try:
        if not os.path.isdir(path):
            status = os.stat(path)
            return status.st_size, status.st_mtime_ns, None
        files = frame_folder_files(path)
        holder = os.path.dirname(files[0]) if files else path
        newest = max([os.stat(holder).st_mtime_ns] + [os.stat(file).st_mtime_ns for file in files])
        return len(files), newest, files
    except OSError:
        return None


def _probe_folder(files):
    """The result of a frame folder holding ``files``: its first and last frame files must decode."""
    if not files:
        return {"bad": "frame folder holds no jpg/png frames"}
    first = None
    for file in dict.fromkeys((files[0], files[-1])):
        image = cv2.imread(file, cv2.IMREAD_COLOR)
        if image is None:
            return {"bad": f"frame file {os.path.basename(file)!r} does not decode"}
        first = image if first is None else first
    return {"frames": len(files), "height": first.shape[0], "width": first.shape[1]}


def _last_frame_decodes(capture, count):
    if count == 1:
        return True
    capture.set(cv2.CAP_PROP_POS_FRAMES, count - 1)
    ok, frame = capture.read()
    return ok and frame is not None


def _probe_video(path):
    """The result of a video file: it opens, its first frame decodes, and its last one (by the header's
    count) too; if not, the frames that really decode are counted and the clip is sampled over those."""
    try:
        capture = open_video(path)
        try:
            stated = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            ok, first = capture.read()
            if not ok or first is None:
                return {"bad": "no frame decodes"}
            size = {"height": first.shape[0], "width": first.shape[1], "stated": stated}
            if stated > 0 and _last_frame_decodes(capture, stated):
                return {"frames": stated, **size}
        finally:
            capture.release()
        decoded = count_video_frames(path)
    except BadVideo as error:
        return {"bad": error.reason}
    except (cv2.error, OSError, ValueError) as error:
        return {"bad": f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"}
    if decoded == 0:
        return {"bad": "no frame decodes"}
    return {"frames": decoded if stated <= 0 or decoded < stated else stated, **size}


def _clip_entry(source, entries):
    """``(cache key, entry, reused)`` of the clip at ``source``: the cached entry while the file is
    unchanged, else a fresh probe (key None: nothing to cache)."""
    key = os.path.abspath(source)
    signature = _signature(key)
    if signature is None:
        return None, {"bad": "file does not exist"}, False
    size, mtime_ns, files = signature
    cached = entries.get(key)
    if _valid_entry(cached) and cached.get("size") == size and cached.get("mtime_ns") == mtime_ns:
        return key, cached, True
    result = _probe_video(key) if files is None else _probe_folder(files)
    return key, {"size": size, "mtime_ns": mtime_ns, "checked": "clip", **result}, False


def _check_flow(flow_source, stack):
    """``(flow_x frames, reason or None)`` of a clip's flow folders for a stack of ``stack`` frames."""
    if flow_source is None:
        return None, NO_FLOW_FOLDER
    if not os.path.isdir(flow_source):
        return None, f"flow folder {str(flow_source)!r} does not exist"
    y_folder = flow_y_folder(flow_source)
    if y_folder is None:
        return None, f"flow folder {str(flow_source)!r} has no 'flow_x' component to find its flow_y twin"
    x_files = list_flow_x_files(flow_source)
    if len(x_files) < stack:
        return len(x_files), f"has {len(x_files)} flow frames, the flow stack needs {stack}"
    try:
        y_names = set(os.listdir(y_folder))
    except OSError:
        return len(x_files), f"flow_y folder {str(y_folder)!r} does not exist"
    lacking = [os.path.basename(flow_y_file(x_file, y_folder)) for x_file in x_files]
    lacking = [name for name in lacking if name not in y_names]
    if lacking:
        return len(x_files), (f"flow_y folder lacks {len(lacking)} of the {len(x_files)} files matching "
                              f"its flow_x frames, e.g. {lacking[0]!r}")
    return len(x_files), None


def _check_item(item, needs, entries):
    """``(VideoInfo, cache key, fresh cache entry or None)`` of one ``VideoItem``."""
    key, entry, reused = None, {}, False
    if needs.clip:
        key, entry, reused = _clip_entry(item.source, entries)
    reason, flow_frames = entry.get("bad"), None
    if reason is None and needs.stack:
        flow_frames, reason = _check_flow(item.flow_source, needs.stack)
    info = VideoInfo(entry.get("frames"), entry.get("height"), entry.get("width"), entry.get("stated"),
                     flow_frames, reason, reused)
    return info, key, None if reused or key is None else entry


@contextlib.contextmanager
def _quiet_native_stderr():
    """Keep off the terminal what OpenCV and FFmpeg print straight to file descriptor 2 about broken
    files (lines the check's own reasons say better); yields the stream for the progress bar.

    Python's ``sys.stderr`` is left as it is; while the block runs, text it sends to descriptor 2
    (e.g. another thread's log line) is lost too.
    """
    try:
        uses_descriptor = sys.stderr.fileno() == 2
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
        uses_descriptor = False
    if not uses_descriptor:
        yield sys.stderr
        return
    saved = os.dup(2)
    bar_stream = os.fdopen(os.dup(saved), "w", encoding="utf-8", errors="replace")
    silence = os.open(os.devnull, os.O_WRONLY)
    os.dup2(silence, 2)
    os.close(silence)
    try:
        yield bar_stream
    finally:
        bar_stream.close()
        os.dup2(saved, 2)
        os.close(saved)


def check_items(items, inputs, *, workers=None, cache_file=None, progress=True):
    """Check that each ``VideoItem`` of ``items`` can feed a model taking ``inputs`` (``InputSpec``s).

    ``workers``: threads probing videos at once (default ``min(8, CPUs)``). ``cache_file``: the cache
    of clip results (default ``default_cache_file()``; False: no cache). ``progress``: show a progress
    bar on stderr (only on a terminal). Returns a ``CheckResult``. A clip usable only over fewer frames
    than its header states has that count recorded for the pipelines (``video.remember_frame_count``).
    """
    started = time.perf_counter()
    items = list(items)
    needs = _Needs.of(inputs)
    workers = workers or min(8, os.cpu_count() or 1)
    cache_path = (default_cache_file() if cache_file is None else cache_file) if needs.clip else False
    entries = _load_cache(cache_path) if cache_path else {}
    outcomes = []
    with _quiet_native_stderr() as stream, ThreadPoolExecutor(max_workers=workers) as pool, tqdm(
        total=len(items), desc="checking videos", unit="video", file=stream, disable=None if progress else True,
    ) as bar:
        for outcome in pool.map(lambda item: _check_item(item, needs, entries), items):
            outcomes.append(outcome)
            bar.update()
    good, bad, info, fresh, short = [], [], {}, 0, []
    for item, (item_info, key, entry) in zip(items, outcomes):
        info[item.source] = item_info
        if entry is not None:
            entries[key] = entry
            fresh += 1
        if item_info.reason is not None:
            bad.append((item.source, item_info.reason))
            continue
        good.append(item)
        if item_info.stated is not None and item_info.frames != item_info.stated:
            remember_frame_count(item.source, item_info.frames)
            if item_info.stated > 0:
                short.append((item.source, item_info.stated, item_info.frames))
    if fresh and cache_path:
        _save_cache(cache_path, entries)
    cached = sum(1 for value in info.values() if value.cached)
    return CheckResult(good, bad, info, time.perf_counter() - started, cached, short)


def _common_folder(sources):
    """The folder that holds every one of ``sources``, or None (e.g. different drives)."""
    try:
        return os.path.commonpath([os.path.dirname(os.path.abspath(source)) for source in sources])
    except ValueError:
        return None


def _named(bad, folder, limit):
    """``'a.avi' (reason); 'b.mp4' (reason); and N more``: up to ``limit`` paths, relative to ``folder``."""
    shown = [f"{(os.path.relpath(path, folder) if folder else path)!r} ({reason})" for path, reason in bad[:limit]]
    more = [f"and {len(bad) - limit} more"] if len(bad) > limit else []
    return "; ".join(shown + more)


def check_dataset(train_index, test_index, inputs, on_bad_video, *, limit=DEFAULT_LIMIT, workers=None,
                  cache_file=None, progress=True, log=None):
    """Check the clips of a train and a test ``VideoIndex`` for a model's ``inputs`` (``check_items``).

    ``on_bad_video="fail"``: any bad clip raises one ``UserError`` line naming the bad files (``limit``
    of them, then a count). ``"skip"``: returns ``DatasetCheck(train, test, summary)``, the indexes
    without the bad clips (class names kept) and a one-line summary of what was left out (None when
    nothing was); a subset left with no usable clip is a ``UserError``. ``log``, when given, receives a
    line per subset (clips checked, bad, seconds).
    """
    if on_bad_video not in BAD_VIDEO_POLICIES:
        raise UserError(f"on_bad_video {on_bad_video!r} invalid; use one of {', '.join(BAD_VIDEO_POLICIES)}")
    indexes = (train_index, test_index)
    results = []
    for index in indexes:
        result = check_items(index.items, inputs, workers=workers, cache_file=cache_file, progress=progress)
        if log is not None:
            from_cache = f" ({result.cached} from the cache)" if result.cached else ""
            log(f"data check {index.subset}: {len(index.items)} videos checked in {result.seconds:.1f} s"
                f"{from_cache}, {len(result.bad)} bad")
        results.append(result)
    bad = [pair for result in results for pair in result.bad]
    total = sum(len(index.items) for index in indexes)
    folder = _common_folder([item.source for index in indexes for item in index.items])
    where = f" in {folder!r}" if folder else ""
    short = tuple(entry for result in results for entry in result.short)
    short_note = _short_note(short, folder, where, limit) if short else None
    if not bad:
        return DatasetCheck(train_index, test_index, None, short, short_note)
    named = _named(bad, folder, limit)
    if on_bad_video == "fail":
        raise UserError(f"data check: {len(bad)} of {total} videos{where} cannot be used: {named}; "
                        "fix or remove them, or set data.on_bad_video: skip to leave them out")
    for index, result in zip(indexes, results):
        if index.items and not result.good:
            raise UserError(f"data check: every one of the {len(index.items)} {index.subset} videos{where} cannot be "
                            f"used: {_named(result.bad, folder, limit)}; fix or remove them, or check data.root")
    kept = [dataclasses.replace(index, items=result.good) for index, result in zip(indexes, results)]
    return DatasetCheck(*kept, f"data check: left out {len(bad)} of {total} videos{where} that cannot be used: {named}",
                        short, short_note)


def _short_note(short, folder, where, limit):
    """The line naming the videos whose header states more frames than decode (``limit``, then a count)."""
    named = _named([(source, f"header {stated} frames, {frames} decode") for source, stated, frames in short],
                   folder, limit)
    several = len(short) > 1
    return (
        f"data check: {len(short)} video{'s' if several else ''}{where} "
        f"{'hold fewer frames than their headers state' if several else 'holds fewer frames than its header states'}"
        f"; sampled over the frames that decode: {named}"
    )


def recipe_inputs(recipe):
    """The inputs decoded from the videos by the stages ``recipe`` trains (each distinct one once).

    A stage fed from packed TFRecords (``data.packed`` and one RGB clip input) decodes no video.
    """
    inputs = []
    for stage in recipe.trained_stages:
        stage_inputs = recipe.inputs_for(stage.name)
        if recipe.data.packed is not None and len(stage_inputs) == 1 and stage_inputs[0].is_clip:
            continue
        inputs += [spec for spec in stage_inputs if spec not in inputs]
    return inputs


def check_recipe_data(recipe, train_index, test_index, *, log=print, workers=None, cache_file=None, progress=True):
    """``check_dataset`` of a recipe's indexes for the inputs of every stage it trains, by its
    ``data.on_bad_video``; ``log`` gets a line per subset and the summary. Returns the ``DatasetCheck``."""
    inputs = recipe_inputs(recipe)
    if not inputs:
        return DatasetCheck(train_index, test_index, None)
    result = check_dataset(train_index, test_index, inputs, recipe.data.on_bad_video, workers=workers,
                           cache_file=cache_file, progress=progress, log=log)
    for line in (result.short_note, result.summary):
        if line:
            log(line)
    return result
