"""CAM attention pictures as EgoRCNN's ``genAttentionMap.py`` draws them: each frame's attention map
min-max scaled to 0..255, upsampled to the frame, ``cv2.COLORMAP_JET``, blended 0.3 heatmap + 0.5 image.
"""

import math
import os

import cv2
import numpy as np

from kerasflow.atomic import atomic_path
from kerasflow.errors import UserError

MAX_GRID_FRAMES = 8
GRID_COLUMNS = 4
MIN_TILE = 128  # small frames are enlarged by a whole factor so the picture stays readable
TITLE_HEIGHT = 28
HEATMAP_WEIGHT = 0.3
IMAGE_WEIGHT = 0.5


def grid_frames(num_frames, max_frames=MAX_GRID_FRAMES):
    """Indices of the frames a grid shows: all of them, or ``max_frames`` spread uniformly."""
    if num_frames <= max_frames:
        return np.arange(num_frames)
    return np.floor(np.arange(max_frames) * num_frames / max_frames).astype(np.int64)


def tile_size(frame_size):
    """Side of one grid tile: ``frame_size`` times the smallest whole factor reaching ``MIN_TILE``."""
    return frame_size * max(1, math.ceil(MIN_TILE / frame_size))


def grid_shape(num_frames, frame_size, max_frames=MAX_GRID_FRAMES):
    """``(height, width)`` of the picture ``cam_grid`` draws for ``num_frames`` frames of ``frame_size``."""
    shown = len(grid_frames(num_frames, max_frames))
    columns = min(shown, GRID_COLUMNS)
    rows = math.ceil(shown / columns)
    side = tile_size(frame_size)
    return TITLE_HEIGHT + rows * side, columns * side


def attention_heatmap(attention, side):
    """JET heatmap ``(side, side, 3)`` uint8 RGB of an attention map ``(h, w)``: min-max to 0..255, bilinear."""
    attention = np.asarray(attention, np.float64)
    attention = attention - attention.min()
    if attention.max() > 0:
        attention = attention / attention.max()
    scaled = np.uint8(255 * attention)
    upsampled = cv2.resize(scaled, (side, side), interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(cv2.applyColorMap(upsampled, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


def overlay_attention(frame, attention):
    """``0.3 * heatmap + 0.5 * frame`` (uint8 RGB ``(S, S, 3)``) for a frame and its map ``(h, w)``."""
    heatmap = attention_heatmap(attention, frame.shape[0]).astype(np.float64)
    return np.uint8(HEATMAP_WEIGHT * heatmap + IMAGE_WEIGHT * frame.astype(np.float64))


def cam_grid(frames, attention_maps, title, max_frames=MAX_GRID_FRAMES):
    """A grid of frames with their CAM attention overlaid, under a title band.

    ``frames``: uint8 RGB ``(T, S, S, 3)``; ``attention_maps``: ``(T, h, w)``. Shows up to ``max_frames``
    frames, ``GRID_COLUMNS`` to a row, each enlarged to ``tile_size(S)``. Returns uint8 RGB of
    ``grid_shape(T, S, max_frames)``.
    """
    frames = np.asarray(frames)
    if len(frames) != len(attention_maps):
        raise ValueError(f"{len(frames)} frames but {len(attention_maps)} attention maps")
    indices = grid_frames(len(frames), max_frames)
    side = tile_size(frames.shape[1])
    height, width = grid_shape(len(frames), frames.shape[1], max_frames)
    picture = np.zeros((height, width, 3), np.uint8)
    for position, index in enumerate(indices):
        frame = cv2.resize(frames[index], (side, side), interpolation=cv2.INTER_LINEAR)
        row, column = divmod(position, GRID_COLUMNS)
        top, left = TITLE_HEIGHT + row * side, column * side
        picture[top : top + side, left : left + side] = overlay_attention(frame, attention_maps[index])
        cv2.putText(picture, f"t={index}", (left + 4, top + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (255, 255, 255), 1, cv2.LINE_AA)
    cv2.putText(picture, title, (6, TITLE_HEIGHT - 9), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                cv2.LINE_AA)
    return picture


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def is_png(path):
    """Whether the file at ``path`` starts with the PNG signature."""
    with open(path, "rb") as file:
        return file.read(len(PNG_SIGNATURE)) == PNG_SIGNATURE


def write_png(path, image):
    """Write uint8 RGB ``image`` to ``path`` as PNG, atomically."""
    path = str(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UserError(f"cannot write {path!r}: folder {folder!r} does not exist")
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise UserError(f"cannot encode the picture for {path!r}")
    try:
        with atomic_path(path) as temporary, open(temporary, "wb") as file:
            file.write(encoded.tobytes())
    except OSError as error:
        raise UserError(f"cannot write {path!r}: {error.strerror}") from None


def plot_training_curves(stage_logs, path):
    """Loss and accuracy per epoch (training solid, validation dashed) of every stage, one after another.

    ``stage_logs``: ``{stage name: log.csv path}`` in training order (Keras ``CSVLogger`` files).
    Writes a PNG to ``path`` atomically.
    """
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(12, 4))
    start = 0
    for stage, log in stage_logs.items():
        with open(log, newline="") as file:
            rows = list(csv.DictReader(file))
        if not rows or "loss" not in rows[0]:
            continue
        epochs = [start + int(row["epoch"]) + 1 for row in rows]
        for axis, metric in zip(axes, ("loss", "accuracy")):
            line, = axis.plot(epochs, [float(row[metric]) for row in rows], label=f"{stage}")
            if f"val_{metric}" in rows[0]:
                axis.plot(epochs, [float(row[f"val_{metric}"]) for row in rows], "--", color=line.get_color())
        start = epochs[-1]
        for axis in axes:
            axis.axvline(start + 0.5, color="grey", linewidth=0.5)
    for axis, metric in zip(axes, ("loss", "accuracy")):
        axis.set_xlabel("epoch (all stages)")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
    axes[1].legend(title="solid: train, dashed: test", fontsize=8)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100, format="png")
    plt.close(figure)
