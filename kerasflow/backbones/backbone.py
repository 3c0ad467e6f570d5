"""``Backbone``: what every kerasflow backbone is, whatever its family, so the streams build on any of them.

A backbone is a functional ``keras.Model`` from an image ``(B, H, W, C)`` (or a clip ``(B, T, H, W, C)``
for a 3-D one) to a dict of outputs, made of parts the streams use on their own:

- ``stem``: a model from the image to the first feature map;
- ``stages``: the stage models in order, each returning ``[output, pre_bn]``, where ``pre_bn`` is the
  last block's output before its final normalisation and activation (EgoRCNN's CAM attends it; a
  family without normalisation returns its output again);
- ``pool``: global average pooling of the last stage to ``(B, feature_channels)``;
- ``head``: the ImageNet classifier on the pooled features (the RGB stream's CAM weights), or None.

A subclass builds these, calls ``keras.Model.__init__`` and then ``_set_parts``, and implements
``load_converted_weights`` for the files its family's converter writes. Its family
(``kerasflow.backbones.family``) declares its presets, stage strides and layer groups.
"""

import difflib

import keras

from kerasflow.backbones.presets import from_preset


class Backbone(keras.Model):
    """Base class of the backbones: the stem / stages / pool / head contract (module docstring)."""

    def _set_parts(self, stem, stages, pool, head, feature_channels, input_channels, include_head,
                   num_head_classes):
        self.stem = stem
        self.stages = stages
        self.pool = pool
        self.head = head
        self.feature_channels = int(feature_channels)
        self.input_channels = int(input_channels)
        self.include_head = bool(include_head)
        self.num_head_classes = int(num_head_classes)

    @classmethod
    def from_preset(cls, name, weights=None, **overrides):
        """``kerasflow.backbones.from_preset``: the preset ``name`` built as this class, optionally with
        ImageNet ``weights``."""
        return from_preset(name, weights, backbone_class=cls, **overrides)

    def apply_stages(self, x, first=0, last=None):
        """Run ``stages[first:last]`` on ``x``; returns ``(output, pre_bn)`` of the last stage run."""
        pre_bn = None
        for stage in self.stages[first:last]:
            x, pre_bn = stage(x)
        return x, pre_bn

    def leaf_layers(self):
        """All layers inside ``stem``, ``stages``, ``pool`` and ``head``, in graph order (no input layers)."""
        layers = []
        for model in [self.stem, *self.stages]:
            layers.extend(layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer))
        layers.append(self.pool)
        if self.head is not None:
            layers.append(self.head)
        return layers

    def find_layer(self, name):
        """The layer named ``name`` (e.g. ``"layer4_0_downsample_conv"``)."""
        layers = {layer.name: layer for layer in [self.stem, *self.stages, *self.leaf_layers()]}
        if name not in layers:
            close = difflib.get_close_matches(name, list(layers), n=5)
            raise ValueError(f"{self.name} has no layer {name!r}; close names: {close}")
        return layers[name]

    def load_converted_weights(self, path):
        """Copy the converted ImageNet weights at ``path`` (``.weights.h5`` plus its ``.json`` sidecar)
        into this backbone; returns it."""
        raise NotImplementedError(f"{type(self).__name__} has no ImageNet weights to load")
