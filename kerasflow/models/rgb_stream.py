"""EgoRCNN's RGB stream (seed §II-A/B, Fig. 1): backbone features per frame (a ResNet in the paper), CAM
spatial attention, ConvLSTM."""

import keras

from kerasflow.backbones.presets import from_preset
from kerasflow.backbones.registry import DEFAULT_PRESET
from kerasflow.data.inputs import RGB_CLIP
from kerasflow.layers import CamSpatialAttention, FoldTime, FrameNormalization, UnfoldTime, egornn_convlstm
from kerasflow.models.common import streams_of


def build_rgb_stream(frames, frame_size, backbone=DEFAULT_PRESET, weights=None, units=512, num_head_classes=1000):
    """The RGB stream body: uint8 clip ``(B, T, S, S, 3)`` -> the 512-d feature EgoRCNN classifies and fuses.

    The clip is ImageNet-normalised inside (``FrameNormalization``), so the model takes raw frames.

    Per frame: the backbone's stages (a ResNet's up to ``layer4``); the CAM of the winning ImageNet
    class, computed from the last block's output, softmaxed over the ``(S/32)^2`` positions (eqs. 1-2)
    and multiplied into the last block's features taken before its final batch norm and ReLU; then
    ``ConvLSTM(units, 3x3)`` over the ``T`` attended maps from a zero state (eqs. 3-8) and the spatial
    average of the final *cell* state. All batch norms are frozen (inference mode), as in EgoRCNN.

    ``cam_maps_model`` gives the per-frame attention maps ``(B, T, S/32, S/32)`` for pictures.
    Returns a ``keras.Model`` named ``"rgb_stream"`` with output ``(B, units)``.
    """
    backbone_model = from_preset(backbone, weights, num_head_classes=num_head_classes)
    clip = keras.Input((frames, frame_size, frame_size, 3), name=RGB_CLIP, dtype="uint8")
    x = backbone_model.stem(FoldTime(name="frames")(FrameNormalization(name="normalize")(clip)))
    x, pre_bn = backbone_model.apply_stages(x)
    cam = CamSpatialAttention(num_head_classes, name="cam_attention")
    attended, _ = cam([x, pre_bn], return_attention=True)
    sequence = UnfoldTime(frames, name="attended_frames")(attended)
    _, _, cell = egornn_convlstm(units, name="convlstm")(sequence)
    features = keras.layers.GlobalAveragePooling2D(name="cell_pool")(cell)
    stream = keras.Model(clip, features, name="rgb_stream")
    # The CAM layer owns the ImageNet head (EgoRCNN's ``weight_softmax`` is its ResNet's ``fc.weight``).
    cam.set_weights(backbone_model.head.get_weights())
    for layer in backbone_model.leaf_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    return stream


def cam_maps_model(model):
    """A model from a clip to the RGB stream's per-frame CAM attention maps ``(B, T, h, w)``.

    ``model`` is an RGB or two-stream model (or the ``rgb_stream`` itself).
    """
    stream = streams_of(model)["rgb_stream"]
    _, attention = stream.get_layer("cam_attention").output
    frames = stream.inputs[0].shape[1]
    return keras.Model(stream.inputs[0], UnfoldTime(frames)(attention), name="cam_maps")
