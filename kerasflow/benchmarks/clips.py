"""Test videos with natural-image statistics: a 1/f-spectrum texture seen by a panning camera, with a
textured object moving across it (flat synthetic frames let TV-L1 finish early; these do not)."""

from pathlib import Path

import numpy as np

HMDB_CLIP = {"frames": 90, "width": 320, "height": 240}


def pink_texture(rng, height, width):
    """A uint8-range float texture ``(height, width)`` whose amplitude spectrum falls as 1/f."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    radius = np.sqrt(fx * fx + fy * fy)
    radius[0, 0] = 1.0
    spectrum = (rng.normal(size=radius.shape) + 1j * rng.normal(size=radius.shape)) / radius
    spectrum[0, 0] = 0.0
    image = np.fft.irfft2(spectrum, s=(height, width))
    return 255.0 * (image - image.min()) / (image.max() - image.min())


def render_clip(rng, frames, width, height):
    """``(frames, height, width, 3)`` uint8: the camera pans over a colour 1/f scene (about 1.5 px right
    and 0.7 px down per frame, with a slow wobble) while a textured disc of a quarter of the height
    crosses it at about 3 px per frame."""
    margin = 4 * frames
    scene = np.stack([pink_texture(rng, height + margin, width + margin) for _ in range(3)], axis=-1)
    radius = height // 4
    sprite = np.stack([pink_texture(rng, 2 * radius, 2 * radius) for _ in range(3)], axis=-1)
    yy, xx = np.mgrid[-radius:radius, -radius:radius]
    disc = (xx * xx + yy * yy) < radius * radius
    video = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        cam_x = int(round(1.5 * t + 3 * np.sin(t / 7)))
        cam_y = int(round(0.7 * t + 2 * np.cos(t / 5)))
        frame = scene[cam_y : cam_y + height, cam_x : cam_x + width].copy()
        top = int(height / 2 - radius + 20 * np.sin(t / 11))
        left = int(-2 * radius + 3.2 * t) % (width + 2 * radius) - 2 * radius
        rows = slice(max(top, 0), min(top + 2 * radius, height))
        cols = slice(max(left, 0), min(left + 2 * radius, width))
        inside = (slice(rows.start - top, rows.stop - top), slice(cols.start - left, cols.stop - left))
        if rows.stop > rows.start and cols.stop > cols.start:
            mask = disc[inside]
            frame[rows, cols][mask] = sprite[inside][mask]
        video[t] = np.clip(frame, 0, 255).astype(np.uint8)
    return video


def write_clips(folder, count, frames=HMDB_CLIP["frames"], width=HMDB_CLIP["width"], height=HMDB_CLIP["height"],
                seed=0):
    """Write ``count`` MJPG clips ``clip_<i>.avi`` of ``render_clip`` into ``folder``; their paths."""
    from kerasflow.data.synthetic import write_video

    rng = np.random.default_rng(seed)
    Path(folder).mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = Path(folder) / f"clip_{index}.avi"
        write_video(path, render_clip(rng, frames, width, height))
        paths.append(path)
    return paths
