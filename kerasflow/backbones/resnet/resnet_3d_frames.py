"""How the inflated (3-D) ResNet treats time, as the representation-flow code's ``flow_2p1d_resnets.py``
builds it: the time extent, stride and padding of its stem and of each block convolution, and the
frames a clip keeps after the stem and each stage.

Plain Python, no Keras: the recipe schema checks clip lengths with it before TensorFlow starts, and
``resnet_3d`` builds its layers from the same numbers.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class TimeWindow:
    """A window over time: ``kernel`` frames every ``stride`` frames, ``padding`` zero frames on each side."""

    kernel: int
    stride: int = 1
    padding: int = 0

    def frames_after(self, frames):
        """Frames out for ``frames`` in, as torch counts them: ``(frames + 2 * padding - kernel) // stride + 1``."""
        return (frames + 2 * self.padding - self.kernel) // self.stride + 1


# conv1 7x7x7 with no padding in time, stride 1 in time (2 in space).
STEM_CONV = TimeWindow(7)
# Max pool 3x3x3, stride 2 and padding 1 in time and space.
STEM_POOL = TimeWindow(3, 2, 1)
# Time extent of each main-path convolution of a block: a basic block's first conv is 1x3x3 and its
# second 3x3x3; a bottleneck's first is 3x1x1, its 1x3x3 second one carries the stride.
BLOCK_TIME_KERNELS = {"basic_block": (1, 3), "bottleneck_block": (3, 1, 1)}
STRIDED_CONV = {"basic_block": 0, "bottleneck_block": 1}


def block_window(kernel, stride):
    """The time window of a block convolution of time extent ``kernel`` and stride ``stride`` (in time
    as in space): padded by ``(kernel - 1) // 2`` frames, but by one frame when a 1-frame kernel strides,
    as the reference pads its strided convolutions and shortcuts (so ``T`` frames become ``T // 2 + 1``)."""
    padding = 1 if kernel == 1 and stride > 1 else (kernel - 1) // 2
    return TimeWindow(kernel, stride, padding)


def frames_left(frames, strides, flow_position=None, flow_layers=0):
    """Frames that a clip of ``frames`` keeps to the end of the inflated ResNet whose stages have
    ``strides`` (in time as in space), with ``flow_layers`` representation-flow layers (one frame each)
    after stage ``flow_position``; 0 when the clip is too short: conv1 needs 7 frames, and a stage that
    strides needs 2 (of a single frame, its strided 1-frame convolution keeps only the padding).

    A stage changes the length only through the strided convolution of its first block (and its shortcut).
    """
    frames = STEM_CONV.frames_after(frames)
    if frames < 1:
        return 0
    frames = STEM_POOL.frames_after(frames)
    for stage, stride in enumerate(strides, start=1):
        if frames < (2 if stride > 1 else 1):
            return 0
        frames = block_window(1, stride).frames_after(frames)
        if stage == flow_position:
            frames -= flow_layers
    return max(frames, 0)
