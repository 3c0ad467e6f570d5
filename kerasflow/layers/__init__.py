"""The paper's layers: representation flow (§II-C/D), CAM spatial attention and ConvLSTM (§II-A/B)."""

from kerasflow.layers.cam_attention import CamSpatialAttention
from kerasflow.layers.convlstm import egornn_convlstm
from kerasflow.layers.flow_block import RepresentationFlowBlock
from kerasflow.layers.representation_flow import RepresentationFlow
from kerasflow.layers.time import FoldTime, TimeAverage, UnfoldTime

__all__ = [
    "CamSpatialAttention",
    "FoldTime",
    "RepresentationFlow",
    "RepresentationFlowBlock",
    "TimeAverage",
    "UnfoldTime",
    "egornn_convlstm",
]
