"""A synthetic motion dataset of real ``.avi`` files whose classes differ only by motion direction.

Each video: a blurred-noise background in two random colours and a textured square patch (its own
texture and colours) that moves ``speed`` (1.5-3) px per frame in its class's direction, wrapping around
the frame edges. Start position, textures, colours and speed are drawn per video and independently of
the class, so one frame says nothing about the class; only the motion does. Layout: the ``folder``
dataset, ``<out>/<class>/<class>_<k>.avi`` plus ``train.txt`` / ``test.txt``.
"""

import json
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from kerasflow.data.video import BadVideo, count_video_frames
from kerasflow.errors import UserError
from kerasflow.atomic import atomic_path, write_json, write_text

DIRECTIONS = (
    ("right", (0, 1)),
    ("left", (0, -1)),
    ("down", (1, 0)),
    ("up", (-1, 0)),
    ("down_right", (1, 1)),
    ("up_left", (-1, -1)),
    ("down_left", (1, -1)),
    ("up_right", (-1, 1)),
)
MANIFEST = "synthetic.json"
GENERATOR_VERSION = 2  # bump when render_video changes, so old folders are not silently reused
FPS = 15


def class_names(classes):
    """Folder names of the first ``classes`` directions, e.g. ``00_right``, ``01_left``."""
    return [f"{number:02d}_{name}" for number, (name, _) in enumerate(DIRECTIONS[:classes])]


def _texture(rng, size, sigma):
    """Blurred uniform noise rescaled to [0, 1], float32 ``(size, size)``."""
    noise = cv2.GaussianBlur(rng.random((size, size), dtype=np.float32), (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    noise -= noise.min()
    return noise / max(float(noise.max()), 1e-6)


def _colourise(texture, rng):
    """Blend two random BGR colours by a texture: float32 ``(H, W, 3)`` in 0..255."""
    low, high = rng.uniform(0, 255, size=(2, 3)).astype(np.float32)
    if np.abs(high - low).sum() < 150:  # keep enough contrast for gradient-based flow
        high = 255 - low
    return low + texture[..., None] * (high - low)


def render_video(rng, direction, frames, size):
    """BGR uint8 ``(frames, size, size, 3)``: a textured patch moving along ``direction`` (dy, dx), wrapping."""
    # A dim, smooth background and a larger, brighter, sharper patch: the motion is what stands out.
    background = 0.35 * _colourise(_texture(rng, size, sigma=size / 16), rng)
    patch_size = max(4, 3 * size // 8)
    patch = 0.4 * 255 + 0.6 * _colourise(_texture(rng, patch_size, sigma=patch_size / 12), rng)
    layer = np.zeros((size, size, 3), np.float32)
    layer[:patch_size, :patch_size] = patch
    mask = np.zeros((size, size, 1), np.float32)
    mask[:patch_size, :patch_size] = 1.0
    speed = rng.uniform(1.5, 3.0)
    start = rng.integers(0, size, size=2)
    video = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        shift = tuple(int(round(s + t * speed * d)) for s, d in zip(start, direction))
        moved_mask = np.roll(mask, shift, axis=(0, 1))
        composed = background * (1 - moved_mask) + np.roll(layer, shift, axis=(0, 1)) * moved_mask
        video[t] = np.clip(composed + 0.5, 0, 255).astype(np.uint8)
    return video


def write_video(path, frames):
    """Write BGR frames as an MJPG ``.avi`` atomically and check that every frame decodes back."""
    height, width = frames.shape[1:3]
    with atomic_path(path, ".avi") as temporary:
        writer = cv2.VideoWriter(temporary, cv2.VideoWriter_fourcc(*"MJPG"), FPS, (width, height))
        if not writer.isOpened():
            raise UserError(f"OpenCV cannot write MJPG video {temporary!r}; check the folder is writable")
        for frame in frames:
            writer.write(frame)
        writer.release()
        try:
            decoded = count_video_frames(temporary)
        except BadVideo:
            decoded = 0
        if decoded != len(frames):
            raise UserError(f"written video {str(path)!r} decodes {decoded} of {len(frames)} frames; "
                            "OpenCV's MJPG writer is broken")


def make_synthetic_dataset(out_dir, classes=4, videos_per_class=24, frames=16, size=64, seed=0, test_fraction=0.25):
    """Write (or reuse) the synthetic dataset in ``out_dir`` and return its path.

    Re-running with the same arguments keeps every video already written; a folder made with other
    arguments is refused (``UserError``).
    """
    if not 1 <= classes <= len(DIRECTIONS):
        raise UserError(f"classes={classes} invalid; the synthetic dataset has 1 to {len(DIRECTIONS)} motion directions")
    if videos_per_class < 2 or frames < 2 or size < 16:
        raise UserError("synthetic dataset needs videos_per_class >= 2, frames >= 2 and size >= 16")
    if size % 2:
        raise UserError(f"size={size} is odd; MJPG video needs an even frame size, use {size + 1}")
    if not 0 < test_fraction < 1:
        raise UserError(f"test_fraction={test_fraction} invalid; use a value between 0 and 1")
    out = Path(out_dir)
    arguments = {"classes": classes, "videos_per_class": videos_per_class, "frames": frames, "size": size,
                 "seed": seed, "test_fraction": test_fraction, "generator": GENERATOR_VERSION}
    manifest = out / MANIFEST
    if out.exists() and not out.is_dir():
        raise UserError(f"{str(out)!r} is a file; pass a folder (new or empty) for the synthetic dataset")
    if manifest.is_file():
        previous = _read_manifest(manifest)
        if previous.get("arguments") != arguments:
            raise UserError(
                f"{str(out)!r} holds a synthetic dataset made with {previous.get('arguments')}, not {arguments}; "
                "choose another folder or delete this one"
            )
        if previous.get("complete"):
            return out
    elif out.exists() and any(out.iterdir()):
        raise UserError(f"{str(out)!r} exists and is not a synthetic dataset folder; choose an empty or new folder")
    out.mkdir(parents=True, exist_ok=True)
    write_json(manifest, {"arguments": arguments, "complete": False})

    names = class_names(classes)
    num_test = max(1, round(videos_per_class * test_fraction))
    lists = {"train": [], "test": []}
    with tqdm(total=classes * videos_per_class, desc="synthetic videos", unit="video") as progress:
        for label, name in enumerate(names):
            (out / name).mkdir(exist_ok=True)
            test_positions = set(np.random.default_rng([seed, label]).permutation(videos_per_class)[:num_test].tolist())
            for number in range(videos_per_class):
                relative = f"{name}/{name}_{number:03d}.avi"
                if not (out / relative).is_file():
                    rng = np.random.default_rng([seed, label, number])
                    write_video(out / relative, render_video(rng, DIRECTIONS[label][1], frames, size))
                lists["test" if number in test_positions else "train"].append(relative)
                progress.update()
    for subset, lines in lists.items():
        write_text(out / f"{subset}.txt", "".join(f"{line}\n" for line in lines))
    write_json(manifest, {"arguments": arguments, "complete": True, "classes": names})
    return out


def _read_manifest(path):
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise UserError(f"{str(path)!r} is not valid JSON ({error}); delete the folder and make the dataset again") from None
    if not isinstance(manifest, dict):
        raise UserError(f"{str(path)!r} is not a synthetic dataset manifest; delete the folder and make the dataset again")
    return manifest
