"""The ``RepresentationFlow`` layer against OpenCV's TV-L1 at identical settings, on the same frames.

At one scale and one warp, with no stopping threshold, no median filter and no illumination term,
``cv2.optflow.DualTVL1OpticalFlow`` runs exactly the iterations of ``RepresentationFlow`` with
``image_gradient="central"`` (OpenCV's centred difference, its borders read as symmetric padding) and
``normalize="none"``: the same ``theta``, ``tau`` and ``lambda`` enter the same ``lambda * theta`` and
``tau / theta`` (the layer's initial values are OpenCV's defaults, 0.3, 0.25 and 0.15; both are built
from ``TVL1_SETTINGS`` here). OpenCV solves one grey image pair per call, so a 32-channel feature map
is 32 calls per pair; OpenCV multiplies float images by 255, so it is given the maps / 255.
"""

import numpy as np

from kerasflow.benchmarks.measure import timed

TVL1_SETTINGS = {"tau": 0.25, "lambda": 0.15, "theta": 0.3}
PARITY_PX = 1e-4  # largest |flow difference| in pixels accepted before timing
TARGET = 4.0  # the layer at least this many times faster than OpenCV at every shape, on an idle machine


def opencv_tvl1(iterations):
    """OpenCV's DualTVL1 computing what ``RepresentationFlow`` does: one scale, one warp, ``iterations``
    iterations, ``TVL1_SETTINGS``."""
    import cv2

    return cv2.optflow.DualTVL1OpticalFlow_create(
        tau=TVL1_SETTINGS["tau"], lambda_=TVL1_SETTINGS["lambda"], theta=TVL1_SETTINGS["theta"], nscales=1,
        warps=1, epsilon=0.0, innnerIterations=iterations, outerIterations=1, gamma=0.0, medianFiltering=1)


def the_layer(iterations):
    """``RepresentationFlow`` at OpenCV's settings (``TVL1_SETTINGS``, central gradient, no rescaling)."""
    from kerasflow.layers import RepresentationFlow

    return RepresentationFlow(n_iter=iterations, theta=TVL1_SETTINGS["theta"], tau=TVL1_SETTINGS["tau"],
                              lambda_=TVL1_SETTINGS["lambda"], image_gradient="central", normalize="none")


def grey_frames(frames, side, seed=0):
    """``(frames, side, side)`` float32 grey levels 0..255 of the benchmark's textured, moving clip."""
    import cv2

    from kerasflow.benchmarks.clips import render_clip

    video = render_clip(np.random.default_rng(seed), frames, 320, 240)
    top, left = (240 - 224) // 2, (320 - 224) // 2
    grey = [cv2.cvtColor(frame[top : top + 224, left : left + 224], cv2.COLOR_RGB2GRAY) for frame in video]
    return np.stack([cv2.resize(g, (side, side), interpolation=cv2.INTER_AREA) for g in grey]).astype(np.float32)


def feature_maps(frames, side, channels, seed=0):
    """``(frames, side, side, channels)`` float32 0..255: a stride-``224 / side`` patch convolution with
    random filters and a ReLU over the 224x224 grey frames, the kind of map the flow layer reads in the
    paper's network (28x28 x 32 after a bottleneck)."""
    patch = 224 // side
    grey = grey_frames(frames, 224, seed)[:, : side * patch, : side * patch]
    patches = grey.reshape(frames, side, patch, side, patch).transpose(0, 1, 3, 2, 4).reshape(frames, side, side, -1)
    filters = np.random.default_rng(seed).normal(size=(patch * patch, channels)).astype(np.float32)
    maps = np.maximum(patches @ filters, 0.0)
    return (255.0 * maps / maps.max()).astype(np.float32)


def compare(pairs, side, channels, iterations, repeats):
    """One row: the layer and OpenCV on the same ``pairs + 1`` frames of ``side`` px and ``channels``
    channels (grey frames for 1 channel, else ``feature_maps``), flow parity checked first."""
    import tensorflow as tf

    frames = grey_frames(pairs + 1, side)[..., None] if channels == 1 else feature_maps(pairs + 1, side, channels)
    layer = the_layer(iterations)
    x = tf.constant(frames[None])
    forward = tf.function(layer, autograph=False)
    tvl1 = opencv_tvl1(iterations)
    planes = [np.ascontiguousarray(frames[..., c] / 255.0) for c in range(channels)]

    def opencv():
        return [[tvl1.calc(plane[t], plane[t + 1], None) for t in range(pairs)] for plane in planes]

    ours = forward(x).numpy()[0]  # (pairs, H, W, 2C): u_x of every channel, then u_y
    theirs = np.stack([np.stack(flows) for flows in opencv()], axis=-2)  # (pairs, H, W, C, 2)
    difference = float(np.abs(ours - np.concatenate([theirs[..., 0], theirs[..., 1]], axis=-1)).max())
    if not difference <= PARITY_PX:
        raise AssertionError(f"RepresentationFlow differs from OpenCV's TV-L1 at equal settings by {difference:.1e} px "
                             f"({pairs} pairs, {side}x{side}, {channels} channels)")
    row = {"pairs": pairs, "side": side, "channels": channels, "iterations": iterations,
           "opencv_problems": pairs * channels, "max_difference_px": difference,
           "layer_s": timed(lambda: forward(x).numpy(), repeats)["median_s"],
           "opencv_s": timed(opencv, repeats)["median_s"]}
    row["speedup"] = row["opencv_s"] / row["layer_s"]
    return row


def opencv_flow(shapes, iterations, repeats):
    """``{"rows", "target"}``: ``compare`` at each ``(pairs, side, channels)`` of ``shapes``."""
    return {"rows": [compare(pairs, side, channels, iterations, repeats) for pairs, side, channels in shapes],
            "settings": TVL1_SETTINGS, "target": TARGET}
