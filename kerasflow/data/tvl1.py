"""TV-L1 optical-flow extraction in the dense_flow / ego-rnn layout (the optical-flow baseline).

For every source (a video file or a folder of jpg/png frames) under a source root, the frames are
decoded with OpenCV, converted to grey, resized to the first frame's size (frame folders may mix
sizes) or, with ``size``, so that the shorter side is ``size`` (``video.scaled_shape``), and the TV-L1
flow between each pair of consecutive frames is written as two 8-bit grey JPEGs in the layout of
``kerasflow.data.flow_files`` (N frames -> N - 1 files per component). Each component is
coded as ``yjxiong/dense_flow`` does with ``-b 20``: ``round((clip(f, -b, b) + b) * 255 / (2 b))``, so
grey 127.5 is zero motion and one grey level is ``2 b / 255`` pixels (0.157 px for b = 20).

The flow is OpenCV's ``cv2.optflow.DualTVL1OpticalFlow`` with its default parameters (listed by
``tvl1_parameters``), computed on the CPU. dense_flow's ``-t 1`` runs the same Zach-Pock-Bischof
algorithm on the GPU with the same defaults; ego-rnn's archive holds dense_flow's *warped* TV-L1
(camera motion cancelled by a homography), which this module does not do.

A finished video is marked by a ``.done`` file (JSON: seconds, pairs) inside its ``flow_x`` folder.
Both folders are first written under ``<out_root>/.flow_partial/`` and moved into place with
``os.replace`` (``flow_y`` first, then ``flow_x`` with the marker), so a crashed run never leaves a
folder that counts as finished; a folder without the marker is redone.
"""

import concurrent.futures
import itertools
import json
import multiprocessing
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from kerasflow.atomic import ensure_writable_folder, write_json
from kerasflow.data.flow_files import DONE_MARKER, FLOW_FOLDERS, flow_file_name, flow_folders, rel_path
from kerasflow.data.video import (
    VIDEO_EXTENSIONS,
    BadVideo,
    frame_folder_files,
    is_video_file,
    iter_clip_frames,
    scaled_shape,
)
from kerasflow.errors import UserError

PARTIAL_DIR = ".flow_partial"
TIMING_FILE = "flow_timing.json"
JPEG_QUALITY = 95  # OpenCV's default, which dense_flow's cv::imencode(".jpg", ...) uses.


def tvl1_parameters():
    """Parameters of ``cv2.optflow.DualTVL1OpticalFlow_create()`` as this OpenCV build sets them.

    OpenCV 4.x/5.x contrib defaults: tau 0.25 (time step), lambda 0.15 (data-term weight; smaller
    is smoother), theta 0.3 (coupling), 5 pyramid scales with scale step 0.8, 5 warpings per scale,
    epsilon 0.01 (stopping threshold), 30 inner / 10 outer iterations, median filtering 5, gamma 0
    (no illumination term), no initial flow.
    """
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    names = ("Tau", "Lambda", "Theta", "ScalesNumber", "ScaleStep", "WarpingsNumber", "Epsilon",
             "InnerIterations", "OuterIterations", "MedianFiltering", "Gamma", "UseInitialFlow")
    return {name: getattr(tvl1, f"get{name}")() for name in names}


def encode_flow(flow, bound=20):
    """Quantise a flow field as dense_flow does.

    Args:
        flow: float array of shape (H, W, 2), pixels per frame, channel 0 = x, 1 = y.
        bound: clip value in pixels (dense_flow ``-b``).

    Returns:
        (x, y): two uint8 arrays of shape (H, W), ``round((clip(f, -b, b) + b) * 255 / (2 b))``
        (round half to even, as OpenCV's ``cvRound``).
    """
    flow = np.asarray(flow, dtype=np.float32)
    if flow.ndim != 3 or flow.shape[-1] != 2:
        raise ValueError(f"flow must have shape (H, W, 2), got {flow.shape}")
    scaled = (np.clip(flow, -bound, bound) + bound) * (255.0 / (2.0 * bound))
    coded = np.rint(scaled).astype(np.uint8)
    return coded[..., 0], coded[..., 1]


def decode_flow(x, y, bound=20):
    """Invert ``encode_flow``: two uint8 (H, W) images -> float32 (H, W, 2) flow in pixels."""
    coded = np.stack([np.asarray(x), np.asarray(y)], axis=-1).astype(np.float32)
    return coded * (2.0 * bound / 255.0) - bound


def iter_tvl1_flow(frames_grey, only=None):
    """Yield the TV-L1 flow (H, W, 2) float32 from each frame to the next of an iterable of grey frames
    (with ``only``, a set of pair indices, of those pairs only: pair t is frames t and t + 1).

    ``flow[r, c] = (dx, dy)`` means the content at pixel (r, c) of frame t is at (r + dy, c + dx) in
    frame t + 1.
    """
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    previous = None
    for index, frame in enumerate(frames_grey):
        if previous is not None and (only is None or index - 1 in only):
            yield tvl1.calc(previous, frame, None)
        previous = frame


def _natural_key(name):
    """Sort key that orders embedded numbers by value: frame2 < frame10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def find_sources(src_root, exclude=()):
    """Sorted videos (by extension, any case) and frame folders under src_root.

    A frame folder is one the loader reads as a clip (``kerasflow.data.video.frame_folder_files``:
    jpg/png frames, or an ``rgb/`` subfolder of them); its subfolders are not searched. Hidden files
    and folders, and the folders in ``exclude`` (e.g. an output tree inside src_root), are skipped.
    Symbolic links to folders are followed (ego-rnn's split folders are symlinks).
    """
    src_root = Path(src_root)
    if not src_root.is_dir():
        raise UserError(f"source folder {src_root} does not exist; pass the folder holding the videos")
    excluded = {Path(path).resolve() for path in exclude}
    sources = []
    for folder, subfolders, files in os.walk(src_root, followlinks=True):
        folder = Path(folder)
        if folder != src_root and frame_folder_files(folder):
            sources.append(folder)
            subfolders.clear()
            continue
        subfolders[:] = [
            name
            for name in subfolders
            if not name.startswith(".") and (folder / name).resolve() not in excluded
        ]
        sources.extend(folder / name for name in files if is_video_file(name) and not name.startswith("."))
    return sorted(sources, key=lambda path: _natural_key(path.relative_to(src_root).as_posix()))


def iter_grey_frames(source, size=None):
    """Grey uint8 frames (H, W) of a video file or frame folder, all of one size (bilinear resize).

    (H, W) is the first frame's size, or with ``size`` that size with the shorter side scaled to
    ``size`` (``scaled_shape``, as the loader scales). Decoded by ``video.iter_clip_frames``, so
    frames come in the loader's order; a video whose stream breaks keeps the frames decoded before
    the break, as the loader counts them.
    """
    shape = None
    for frame in iter_clip_frames(source):
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        if shape is None:
            height, width = grey.shape
            shape = (height, width) if size is None else scaled_shape(height, width, min(height, width), size)
        if grey.shape != shape:
            grey = cv2.resize(grey, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
        yield grey


def _write_jpeg(path, image):
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise OSError(f"JPEG encoding failed for {path}")
    Path(path).write_bytes(data.tobytes())


def read_done_marker(out_root, rel):
    """The marker dict (seconds, pairs) of a finished video, or None if it is not finished."""
    x_dir, y_dir = flow_folders(out_root, rel)
    marker = x_dir / DONE_MARKER
    if not (marker.is_file() and y_dir.is_dir()):
        return None
    try:
        record = json.loads(marker.read_text())
    except ValueError:
        return None
    return record if isinstance(record, dict) and "seconds" in record else None


def _move_into_place(partial, final):
    if final.exists():  # an unfinished folder left by an earlier run
        shutil.rmtree(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(partial, final)


def extract_video(source, out_root, rel, bound=20, size=None):
    """Extract TV-L1 flow of one source into ``out_root/flow_{x,y}/rel/`` and mark it done.

    Args:
        source: video file or frame folder.
        out_root: output root (gets ``flow_x/`` and ``flow_y/``).
        rel: output path relative to ``out_root/flow_x`` (``flow_files.rel_path``).
        bound: clip value in pixels for the JPEG coding.
        size: shorter side in pixels after resizing, or None to keep the decoded size.

    Returns:
        dict(timing=seconds spent on decoding, flow and writing, pairs=number of flow images per
        component, width and height=size of the flow images in pixels).

    Raises:
        BadVideo: the source cannot be decoded, has fewer than 2 frames, or OpenCV or the file
        system fails on it (``cv2.error``, ``OSError``).
    """
    try:
        return _extract_video(source, Path(out_root), rel, bound, size)
    except (cv2.error, OSError) as error:
        lines = str(error).strip().splitlines()
        raise BadVideo(source, f"{type(error).__name__}: {lines[-1] if lines else ''}") from error


def _extract_video(source, out_root, rel, bound, size):
    start = time.perf_counter()
    partial_root = out_root / PARTIAL_DIR
    partial_root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="flow-", dir=partial_root))
    try:
        partial_x, partial_y = work / "x", work / "y"
        partial_x.mkdir()
        partial_y.mkdir()
        pairs, (height, width) = _write_flow(source, partial_x, partial_y, bound, size)
        seconds = time.perf_counter() - start
        (partial_x / DONE_MARKER).write_text(json.dumps({"seconds": seconds, "pairs": pairs}))
        x_dir, y_dir = flow_folders(out_root, rel)
        _move_into_place(partial_y, y_dir)
        _move_into_place(partial_x, x_dir)  # the commit point: the marker arrives with flow_x
        return {"timing": seconds, "pairs": pairs, "width": width, "height": height}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _write_flow(source, x_folder, y_folder, bound, size):
    """Write the coded flow JPEGs of ``source``; returns (pairs, (height, width) of the frames)."""
    frames = iter_grey_frames(source, size)
    first = next(frames, None)
    pairs = 0
    for pairs, flow in enumerate(iter_tvl1_flow(itertools.chain([first], frames)), start=1):
        x, y = encode_flow(flow, bound)
        _write_jpeg(x_folder / flow_file_name("x", pairs), x)
        _write_jpeg(y_folder / flow_file_name("y", pairs), y)
    if pairs == 0:
        raise BadVideo(source, "fewer than 2 frames decode, flow needs a pair")
    return pairs, first.shape


def _init_worker():
    cv2.setNumThreads(1)  # one core per process; parallelism comes from the process pool


def _extract_or_report(source, out_root, rel, bound, size):
    """``extract_video`` for a worker: a bad video comes back as ``{"error": "<path>: <reason>"}``."""
    try:
        return extract_video(source, out_root, rel, bound, size)
    except BadVideo as error:
        return {"error": f"{error.path}: {error.reason}"}


def _check_unique_outputs(sources, src_root):
    seen = {}
    for source in sources:
        rel = rel_path(source, src_root)
        if rel in seen:
            raise UserError(
                f"{seen[rel]} and {source} would both write flow_x/{rel.as_posix()}; rename or move one"
            )
        seen[rel] = source


def extract_all(src_root, out_root, workers=None, bound=20, size=None, limit=None, strict=False):
    """Extract flow for every source under src_root, skipping finished ones; write the timing file.

    Args:
        src_root: folder searched by ``find_sources``.
        out_root: output root; ``flow_x/``, ``flow_y/`` and ``flow_timing.json`` go there.
        workers: number of processes (default: cpu count).
        bound, size: as ``extract_video``.
        limit: process only the first ``limit`` sources (sorted), e.g. to time a sample.
        strict: a source that cannot be decoded raises UserError instead of being skipped.

    Returns:
        summary dict: ``extracted``, ``skipped`` (already finished), ``failed`` ({source: reason}),
        ``seconds`` ({rel path: seconds} of every finished source, this run and earlier ones),
        ``mean_seconds``, ``total_seconds``, ``wall_seconds`` (this run).

    Raises:
        UserError: src_root missing or holding no sources, two sources mapping to the same output,
            or (strict) a source that cannot be decoded.
    """
    wall_start = time.perf_counter()
    src_root, out_root = Path(src_root), Path(out_root)
    if out_root.exists() and not out_root.is_dir():
        raise UserError(f"output root {out_root} is a file; pass a folder (it is created if missing)")
    ensure_writable_folder(out_root)
    workers = workers or os.cpu_count() or 1
    if workers < 1:
        raise ValueError(f"`workers` must be >= 1 (or None: one per CPU). Received: workers={workers}")
    sources = find_sources(src_root, exclude=[out_root / name for name in FLOW_FOLDERS])
    if not sources:
        raise UserError(
            f"source folder {src_root} holds no videos ({', '.join(VIDEO_EXTENSIONS)}) or frame folders"
        )
    _check_unique_outputs(sources, src_root)
    if limit is not None:
        sources = sources[:limit]

    finished, todo = {}, []
    for source in sources:
        rel = rel_path(source, src_root)
        marker = read_done_marker(out_root, rel)
        if marker is None:
            todo.append((source, rel))
        else:
            finished[rel.as_posix()] = marker["seconds"]
    skipped = len(finished)

    failed = {}
    # spawn, not fork: a fork taken after OpenCV started its thread pool deadlocks in the child
    context = multiprocessing.get_context("spawn")
    processes = max(1, min(workers, len(todo)))
    with concurrent.futures.ProcessPoolExecutor(processes, context, initializer=_init_worker) as pool:
        futures = {
            pool.submit(_extract_or_report, source, out_root, rel, bound, size): (source, rel)
            for source, rel in todo
        }
        progress = tqdm(total=len(sources), initial=skipped, unit="video", desc="TV-L1 flow")
        for future in concurrent.futures.as_completed(futures):
            source, rel = futures[future]
            result = future.result()
            progress.update()
            if "error" in result:
                if strict:
                    for pending in futures:
                        pending.cancel()
                    progress.close()
                    raise UserError(
                        f"bad video {result['error']}; fix or remove it, or extract without strict to skip it"
                    )
                failed[str(source)] = result["error"]
                progress.write(f"skipped bad video {result['error']}")
            else:
                finished[rel.as_posix()] = result["timing"]
        progress.close()
    shutil.rmtree(out_root / PARTIAL_DIR, ignore_errors=True)

    seconds = dict(sorted(finished.items(), key=lambda item: _natural_key(item[0])))
    total = sum(seconds.values())
    summary = {
        "extracted": len(seconds) - skipped,
        "skipped": skipped,
        "failed": failed,
        "seconds": seconds,
        "mean_seconds": total / len(seconds) if seconds else 0.0,
        "total_seconds": total,
        "wall_seconds": time.perf_counter() - wall_start,
    }
    _write_timing(out_root, summary, workers, bound, size)
    return summary


def _write_timing(out_root, summary, workers, bound, size):
    record = {
        "videos": len(summary["seconds"]),
        "mean_seconds": summary["mean_seconds"],
        "total_seconds": summary["total_seconds"],
        "wall_seconds_this_run": summary["wall_seconds"],
        "workers": workers,
        "bound": bound,
        "size": size,
        "opencv": cv2.__version__,
        "tvl1_parameters": tvl1_parameters(),
        "failed": summary["failed"],
        "seconds": summary["seconds"],
    }
    out_root.mkdir(parents=True, exist_ok=True)
    write_json(out_root / TIMING_FILE, record)
