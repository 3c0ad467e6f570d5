"""The networks a representation-flow stream can have (``model.flow_network``): one table, read by the
recipe schema and the builders.

- ``per_frame`` (the default; the seed paper's stream): the 2-D backbone applied to every frame, the
  flow block between two of its stages, the remaining stages per time step, averaged over time.
- ``inflated_3d`` (the representation-flow code's HMDB network): the backbone's 3-D version (a ResNet
  inflated to 3-D), whose stem and strided stages convolve over time and shorten the clip before the
  flow block.

This module imports no Keras: the recipe schema reads the table before TensorFlow starts.
"""

import dataclasses
import typing

from kerasflow.backbones.registry import frames_left_3d, preset_family


@dataclasses.dataclass(frozen=True)
class FlowNetwork:
    """One ``model.flow_network``.

    Attributes:
        name: the recipe's ``model.flow_network``.
        summary: one line for listings and help.
        builder: name of the function in ``kerasflow.models.flow_streams`` that builds the stream body,
            ``builder(frames, frame_size, backbone=, weights=, num_flow_layers=, flow_iterations=,
            flow_position=, bottleneck=, flow_options=) -> keras.Model``.
        frames_left: ``frames_left(frames, backbone, position, num_layers)``: how many frames of a clip
            of ``frames`` reach the end of the stream, with ``num_layers`` flow layers after stage
            ``position`` of backbone preset ``backbone``; 0 when the clip is too short.
        clip_rule: ``clip_rule(backbone) -> str``: what else limits the clip length on backbone preset
            ``backbone``, for the message that asks for more frames ("": nothing).
    """

    name: str
    summary: str
    builder: str
    frames_left: typing.Callable
    clip_rule: typing.Callable = lambda backbone: ""

    def frames_needed(self, backbone, position, num_layers):
        """The fewest clip frames that reach the end of the stream."""
        frames = 1
        while self.frames_left(frames, backbone, position, num_layers) < 1:
            frames += 1
        return frames


FLOW_NETWORKS = {network.name: network for network in (
    FlowNetwork("per_frame", "the 2-D backbone on every frame, the flow block between two stages (the seed paper)",
                "build_representation_flow_stream", lambda frames, backbone, position, num_layers: frames - num_layers),
    FlowNetwork("inflated_3d", "the backbone inflated to 3-D, as the representation-flow code's HMDB network",
                "build_inflated_flow_stream",
                lambda frames, backbone, position, num_layers: frames_left_3d(backbone, frames, position, num_layers),
                lambda backbone: preset_family(backbone).clip_rule_3d),
)}


def flow_network_names():
    """The names ``model.flow_network`` accepts."""
    return tuple(FLOW_NETWORKS)


def get_flow_network(name):
    """The ``FlowNetwork`` called ``name`` (``KeyError`` for an unknown name: the schema checks names first)."""
    return FLOW_NETWORKS[name]
