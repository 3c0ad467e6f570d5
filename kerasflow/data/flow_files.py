"""Where stored TV-L1 flow lives on disk: the dense_flow / ego-rnn layout, in one place.

For a clip at ``<source root>/<rel>.<ext>`` (or a frame folder ``<source root>/<rel>/``) the flow is::

    <flow root>/flow_x/<rel>/flow_x_00001.jpg ...   x component, one 8-bit grey JPEG per frame pair
    <flow root>/flow_y/<rel>/flow_y_00001.jpg ...   y component

numbered from 1. The source root is the folder the extraction ran on (``python -m kerasflow.extract_flow``):
``<root>/cropped_clips`` for EGTEA, the dataset root otherwise; GTEA61's archive ships ``flow_x/`` and
``flow_y/`` beside ``frames/`` (the course copy names them ``flow_x_processed``/``flow_y_processed``).
"""

import os
from pathlib import Path

import cv2
import numpy as np

from kerasflow.data.video import BadVideo, is_video_file, list_frame_files, window_start

FLOW_X = "flow_x"
FLOW_Y = "flow_y"
FLOW_FOLDERS = (FLOW_X, FLOW_Y)  # never a class folder of a dataset
GTEA_FLOW_X_FOLDERS = ("flow_x", "flow_x_processed")
DONE_MARKER = ".done"  # inside a flow_x clip folder: its extraction finished


def flow_file_name(component, number):
    """``flow_x_00001.jpg`` for component ``"x"`` and pair number 1 (numbers start at 1)."""
    return f"flow_{component}_{number:05d}.jpg"


def rel_path(source, source_root):
    """The clip's path below ``source_root`` with a video extension removed (a frame folder keeps its name)."""
    rel = Path(source).relative_to(source_root)
    return rel.with_suffix("") if is_video_file(rel) else rel


def flow_folders(flow_root, rel):
    """``(flow_x folder, flow_y folder)`` of the clip at ``rel`` under ``flow_root``."""
    flow_root = Path(flow_root)
    return flow_root / FLOW_X / rel, flow_root / FLOW_Y / rel


def flow_folder_of(source, source_root, flow_root):
    """The ``flow_x`` folder of ``source`` under ``flow_root`` as a string, or None when there is none."""
    candidate = flow_folders(flow_root, rel_path(source, source_root))[0]
    return str(candidate) if candidate.is_dir() else None


def flow_y_folder(flow_x_folder):
    """The ``flow_y`` twin of a ``flow_x`` folder (the last path component starting with ``flow_x`` is
    renamed), or None when the path has no such component."""
    parts = list(Path(flow_x_folder).parts)
    for position in range(len(parts) - 1, -1, -1):
        if parts[position].startswith(FLOW_X):
            parts[position] = parts[position].replace(FLOW_X, FLOW_Y, 1)
            return Path(*parts)
    return None


def flow_y_file(flow_x_file, y_folder):
    """The y file paired with a ``flow_x_*.jpg`` file, in ``y_folder``."""
    return os.path.join(y_folder, os.path.basename(flow_x_file).replace(FLOW_X, FLOW_Y, 1))


def list_flow_x_files(folder):
    """The ``flow_x_*`` frames of a ``flow_x`` clip folder, in numeric order."""
    return list_frame_files(folder, prefix=FLOW_X)


def stack_starts(pairs, stack, clips):
    """The first flow frame of each of the ``clips`` test stacks of ``stack`` frames in a video of ``pairs``
    flow frames: the centre stack for one clip, else ``floor(linspace(0, pairs - stack + 1, clips,
    endpoint=False))`` (ego-rnn's multi-stack test)."""
    if clips == 1:
        return [window_start(pairs - stack)]
    return [int(start) for start in np.floor(np.linspace(0, pairs - stack + 1, clips, endpoint=False))]


def read_flow_stack(flow_x_folder, stack=5, training=False, rng=None, clip=0, clips=1):
    """``stack`` consecutive TV-L1 flow frames, uint8 ``(H, W, 2 * stack)`` interleaved x0, y0, x1, y1, ...

    ``flow_x_folder`` holds ``flow_x_%05d.jpg``; the y components are read from its ``flow_y`` twin.
    Start: uniform over all valid starts in training; in test the centre stack ``(N - stack) // 2``, or
    with ``clips`` stacks the ``clip``-th of ``floor(linspace(0, N - stack + 1, clips, endpoint=False))``
    (ego-rnn's 5-stack test of its flow stream). Raises ``BadVideo`` when the folders or frames are
    missing, too few, unreadable or of mixed sizes.
    """
    x_folder = str(flow_x_folder)
    if not os.path.isdir(x_folder):
        raise BadVideo(x_folder, "flow folder does not exist")
    y_folder = flow_y_folder(x_folder)
    if y_folder is None:
        raise BadVideo(x_folder, f"flow folder path has no '{FLOW_X}' component to find its {FLOW_Y} twin")
    x_files = list_flow_x_files(x_folder)
    if len(x_files) < stack:
        raise BadVideo(x_folder, f"has {len(x_files)} flow frames, the flow stack needs {stack}")
    if training:
        start = window_start(len(x_files) - stack, training, rng)
    else:
        start = stack_starts(len(x_files), stack, clips)[clip]
    planes = []
    for x_file in x_files[start : start + stack]:
        for file in (x_file, flow_y_file(x_file, y_folder)):
            plane = cv2.imread(file, cv2.IMREAD_GRAYSCALE)
            if plane is None:
                raise BadVideo(x_folder, f"flow frame {file!r} is missing or does not decode")
            planes.append(plane)
    if any(plane.shape != planes[0].shape for plane in planes):
        raise BadVideo(x_folder, "flow frames differ in size")
    return np.stack(planes, axis=-1)
