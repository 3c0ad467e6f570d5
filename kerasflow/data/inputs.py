"""What a model input holds, by name, and how the pipelines sample it for a video.

- ``rgb``: an RGB clip for EgoRCNN's RGB stream, uint8 ``(T, S, S, 3)`` (``data.rgb_frames`` frames);
- ``flow_clip``: an RGB clip for the representation-flow stream, uint8 ``(T, S, S, 3)``
  (``data.flow_frames`` frames);
- ``tvl1_stack``: a stack of ``K`` TV-L1 flow frame pairs for the optical-flow baseline, uint8
  ``(S, S, 2K)`` interleaved ``x0, y0, x1, y1, ...``.

Models, metadata and exports written by kerasflow 0.2 call the TV-L1 stack ``flow`` (``LEGACY_NAMES``);
they are read with today's name (``current_name``), so they keep loading.

An ``InputSpec`` is part of every saved model's metadata (``kerasflow.model_io.ModelInfo``), so the
pipelines feed a saved model exactly as it was trained.
"""

import dataclasses

RGB_CLIP = "rgb"
FLOW_CLIP = "flow_clip"
TVL1_STACK = "tvl1_stack"
INPUT_NAMES = (RGB_CLIP, FLOW_CLIP, TVL1_STACK)
LEGACY_NAMES = {"flow": TVL1_STACK}  # {name in files of kerasflow 0.2: name today}
# How a clip's T frames are chosen: "segments" spreads them over the whole video, one per equal segment
# (EgoRCNN); "contiguous" takes T consecutive frames ``stride`` apart from one window (representation flow).
SAMPLINGS = ("contiguous", "segments")
# How a training frame is cropped (``kerasflow.data.pipeline``): EgoRCNN's multi-scale centre/corner crops
# of the rescaled frame, or one plain random crop of the frame as it is (the representation-flow code).
CROPS = ("multiscale_corners", "random")


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """One model input.

    Attributes:
        name: ``rgb``, ``flow_clip`` or ``tvl1_stack`` (what it holds, see the module docstring).
        frames: frames of a clip, or flow frame pairs of a TV-L1 stack.
        size: side of the square crop in pixels.
        sampling: how a clip's frames are chosen (``segments`` or ``contiguous``, ``SAMPLINGS``).
        stride: frames between two sampled frames where the sampling uses one.
        crop: how training frames are cropped (``CROPS``); test frames are always a centre crop.
        subsample: every ``subsample``-th row and column of a frame is kept before cropping (2: half
            resolution, as the representation-flow code reads HMDB51).
    """

    name: str
    frames: int
    size: int
    sampling: str = "segments"
    stride: int = 1
    crop: str = "multiscale_corners"
    subsample: int = 1

    def __post_init__(self):
        if self.name not in INPUT_NAMES:
            raise ValueError(f"`name` must be one of {INPUT_NAMES}. Received: name={self.name!r}")

    @property
    def is_clip(self):
        """True for RGB clips, False for a TV-L1 flow stack."""
        return self.name != TVL1_STACK

    @property
    def shape(self):
        """Shape of one example (no batch axis)."""
        if self.is_clip:
            return (self.frames, self.size, self.size, 3)
        return (self.size, self.size, 2 * self.frames)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        """The ``InputSpec`` of ``to_dict``'s dict, also one written with a legacy name."""
        return cls(**{**values, "name": current_name(values["name"])})


def current_name(name):
    """Today's name of the model input ``name`` (``LEGACY_NAMES``); ``name`` itself when it is current."""
    return LEGACY_NAMES.get(name, name)
