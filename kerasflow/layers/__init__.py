"""The paper's layers: representation flow (§II-C/D), CAM spatial attention and ConvLSTM (§II-A/B), and
the frame folding, normalisation and pooling the streams are built from."""

from kerasflow.layers.cam_attention import CamSpatialAttention
from kerasflow.layers.convlstm import ConvLSTM, egornn_convlstm
from kerasflow.layers.flow_block import RepresentationFlowBlock
from kerasflow.layers.pooling import SeparableMaxPooling3D
from kerasflow.layers.preprocessing import FrameNormalization
from kerasflow.layers.representation_flow import RepresentationFlow
from kerasflow.layers.time import FoldTime, TimeAverage, UnfoldTime

__all__ = [
    "CamSpatialAttention",
    "ConvLSTM",
    "FoldTime",
    "FrameNormalization",
    "RepresentationFlow",
    "RepresentationFlowBlock",
    "SeparableMaxPooling3D",
    "TimeAverage",
    "UnfoldTime",
    "egornn_convlstm",
]
