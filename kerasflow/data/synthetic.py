"""A synthetic motion dataset of real ``.avi`` files whose classes differ only by motion direction.

Two variants (``variant``), both wrapping around the frame edges:

- ``patch`` (the default): a blurred-noise background in two random colours and a textured square
  patch (its own texture and colours) that moves ``speed`` (1.5-3) px per frame in its class's direction.
- ``letters``, harder motion: a static sharp texture (blurred by about one pixel) and 2-4 thin random
  letters (``cv2.putText``, thickness 1-2, each its own colour, contrasting with the background) that
  all drift together in the class's direction at a per-video speed of 0.5-2 px per frame, in whole-pixel
  steps (a float position, rounded: at 0.5 px per frame they move 1 px every second frame), plus
  Gaussian sensor noise drawn anew for every frame (sigma 3-8 grey levels per video). On a diagonal
  both coordinates move by ``speed`` per frame, as in ``patch``.

Start positions, textures, letters, colours, speed and noise are drawn per video and independently of
the class (the same seed gives the same first frame for every direction), so one frame says nothing
about the class; only the motion does. Layout: the ``folder`` dataset, ``<out>/<class>/<class>_<k>.avi``
plus ``train.txt`` / ``test.txt``.
"""

import json
import string
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from kerasflow.atomic import atomic_path, write_json, write_text
from kerasflow.data.video import BadVideo, count_video_frames
from kerasflow.errors import UserError

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
VARIANTS = ("patch", "letters")
LETTERS_SPEED = (0.5, 2.0)  # px per frame at the stored size, per video
LETTERS_COUNT = (2, 4)
LETTERS_NOISE_SIGMA = (3.0, 8.0)  # grey levels, per video; the noise itself is drawn per frame


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


def render_video(rng, direction, frames, size, variant="patch", noise=True):
    """BGR uint8 ``(frames, size, size, 3)`` of one video moving along ``direction`` (dy, dx), wrapping.

    ``variant``: ``"patch"`` (a textured patch) or ``"letters"`` (``letters_scene``). ``noise=False``
    leaves out the letters' sensor noise (the same video otherwise: the noise is drawn last);
    ``patch`` has none.
    """
    if variant == "letters":
        return letters_scene(rng, direction, frames, size).render(rng if noise else None)
    if variant != "patch":
        raise ValueError(f"variant must be one of {VARIANTS}. Received: variant={variant!r}")
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


@dataclass
class LettersScene:
    """One ``letters`` video before rendering.

    Attributes:
        background: float32 ``(size, size, 3)``, the static BGR background.
        ink: float32 ``(size, size, 3)``, the letters' colours times their coverage, in their place at frame 0.
        alpha: float32 ``(size, size, 1)``, the letters' coverage (0-1, anti-aliased) at frame 0.
        offsets: int ``(frames, 2)``, the whole-pixel (dy, dx) shift of the letters at each frame from
            frame 0: ``round(phase + t * speed * direction) - round(phase)`` per coordinate.
        speed: px per frame along each moving coordinate.
        noise_sigma: the standard deviation of the per-frame Gaussian noise, in grey levels.
    """

    background: np.ndarray
    ink: np.ndarray
    alpha: np.ndarray
    offsets: np.ndarray
    speed: float
    noise_sigma: float

    def frame(self, t):
        """Frame ``t`` without noise, float32 BGR: the letters moved by ``offsets[t]`` over the background."""
        shift = tuple(int(v) for v in self.offsets[t])
        alpha = np.roll(self.alpha, shift, axis=(0, 1))
        return self.background * (1 - alpha) + np.roll(self.ink, shift, axis=(0, 1))

    def render(self, rng=None):
        """BGR uint8 ``(frames, size, size, 3)``; with ``rng`` each frame gets its own Gaussian noise."""
        video = np.empty((len(self.offsets), *self.background.shape), np.uint8)
        for t in range(len(self.offsets)):
            frame = self.frame(t)
            if rng is not None:
                frame = frame + rng.normal(0.0, self.noise_sigma, frame.shape).astype(np.float32)
            video[t] = np.clip(frame + 0.5, 0, 255).astype(np.uint8)
        return video


def _letter_colour(rng, background_mean):
    """A random BGR colour at least 150 grey levels (summed over B, G, R) away from the background's mean."""
    colour = rng.uniform(0, 255, size=3)
    if np.abs(colour - background_mean).sum() < 150:
        colour = np.where(background_mean < 127.5, rng.uniform(200, 255, size=3), rng.uniform(0, 55, size=3))
    return colour.astype(np.float32)


def letters_scene(rng, direction, frames, size):
    """The ``letters`` variant's video (``LettersScene``): thin letters drifting over a static texture.

    Everything but ``offsets`` is drawn from ``rng`` without looking at ``direction``, and ``offsets``
    from the same draws, so every direction of one seed starts from the same frame.
    """
    # A sharp texture (about 1 px blur) at 60 % contrast around mid-grey, so the letters stand out by colour.
    texture = _colourise(_texture(rng, size, sigma=rng.uniform(0.7, 1.5)), rng)
    background = (0.2 * 255 + 0.6 * texture).astype(np.float32)
    background_mean = background.reshape(-1, 3).mean(axis=0)
    ink = np.zeros((size, size, 3), np.float32)
    alpha = np.zeros((size, size, 1), np.float32)
    for _ in range(int(rng.integers(LETTERS_COUNT[0], LETTERS_COUNT[1] + 1))):
        letter = str(rng.choice(list(string.ascii_uppercase)))
        height = rng.uniform(size / 5, size / 3)  # the cap height in px
        scale = height / 22.0  # FONT_HERSHEY_SIMPLEX's capitals are about 22 px high at scale 1
        thickness = int(rng.integers(1, 3))
        colour = _letter_colour(rng, background_mean)
        (width, text_height), _ = cv2.getTextSize(letter, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        canvas = np.zeros((size, size), np.uint8)  # OpenCV draws text on 8-bit images only
        origin = ((size - width) // 2, (size + text_height) // 2)  # centred, then moved to its start
        cv2.putText(canvas, letter, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thickness, cv2.LINE_AA)
        start = tuple(int(v) for v in rng.integers(0, size, size=2))
        coverage = np.roll(canvas.astype(np.float32) / 255.0, start, axis=(0, 1))[..., None]
        ink = ink * (1 - coverage) + colour * coverage  # later letters in front
        alpha = alpha * (1 - coverage) + coverage
    speed = float(rng.uniform(*LETTERS_SPEED))
    phase = rng.random(2)  # the sub-pixel start: whole-pixel steps fall on different frames per video
    noise_sigma = float(rng.uniform(*LETTERS_NOISE_SIGMA))
    position = phase[None, :] + np.arange(frames)[:, None] * speed * np.asarray(direction, np.float64)[None, :]
    rounded = np.floor(position + 0.5).astype(np.int64)
    return LettersScene(background, ink, alpha, rounded - rounded[:1], speed, noise_sigma)


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


def make_synthetic_dataset(out_dir, classes=4, videos_per_class=24, frames=16, size=64, seed=0, test_fraction=0.25,
                           variant="patch"):
    """Write (or reuse) the synthetic dataset in ``out_dir`` and return its path.

    ``variant``: ``"patch"`` or ``"letters"`` (see the module). Re-running with the same arguments keeps
    every video already written; a folder made with other arguments is refused (``UserError``). A
    folder made before variants existed counts as ``patch``. Arguments out of range raise ``ValueError``.
    """
    if not 1 <= classes <= len(DIRECTIONS):
        raise ValueError(f"`classes` must be from 1 to {len(DIRECTIONS)} (the motion directions). "
                         f"Received: classes={classes}")
    if videos_per_class < 2 or frames < 2 or size < 16:
        raise ValueError("`videos_per_class` and `frames` must be >= 2 and `size` >= 16. Received: "
                         f"videos_per_class={videos_per_class}, frames={frames}, size={size}")
    if size % 2:
        raise ValueError(f"`size` must be even (MJPG video needs an even frame size), e.g. {size + 1}. "
                         f"Received: size={size}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"`test_fraction` must be between 0 and 1. Received: test_fraction={test_fraction}")
    if variant not in VARIANTS:
        raise ValueError(f"`variant` must be one of {VARIANTS}. Received: variant={variant!r}")
    out = Path(out_dir)
    arguments = {"classes": classes, "videos_per_class": videos_per_class, "frames": frames, "size": size,
                 "seed": seed, "test_fraction": test_fraction, "variant": variant, "generator": GENERATOR_VERSION}
    manifest = out / MANIFEST
    if out.exists() and not out.is_dir():
        raise UserError(f"{str(out)!r} is a file; pass a folder (new or empty) for the synthetic dataset")
    if manifest.is_file():
        previous = _read_manifest(manifest)
        if isinstance(previous.get("arguments"), dict):  # folders made before variants existed are patch ones
            previous["arguments"] = {"variant": "patch", **previous["arguments"]}
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
                    write_video(out / relative, render_video(rng, DIRECTIONS[label][1], frames, size, variant))
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
        raise UserError(f"{str(path)!r} is not valid JSON ({error}); "
                        "delete the folder and make the dataset again") from None
    if not isinstance(manifest, dict):
        raise UserError(f"{str(path)!r} is not a synthetic dataset manifest; "
                        "delete the folder and make the dataset again")
    return manifest
