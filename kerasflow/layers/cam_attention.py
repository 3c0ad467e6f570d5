"""Class-activation-map spatial attention, as EgoRCNN computes it (seed §II-A/B, eqs. 1-2)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerasflow")
class CamSpatialAttention(keras.layers.Layer):
    """Spatial attention from the class activation map of the winning ImageNet class.

    The layer owns the backbone's ImageNet classifier (``kernel (C, K)``, ``bias (K,)``; load the
    pretrained head into it with ``set_weights``). From frame features ``f`` of shape ``(B, H, W, C)``:
    1. logits = mean_{H,W}(f) @ kernel + bias; the winning class ``c`` is their argmax (the choice
       carries no gradient);
    2. the CAM of eq. (1): ``M_c(i) = sum_l kernel[l, c] * f_l(i)`` (no bias);
    3. the attention map of eq. (2): softmax of ``M_c`` over the ``H * W`` positions;
    4. the output ``g * attention``, where ``g`` is the tensor to attend: EgoRCNN attends the last
       block's features taken before its final batch norm, so the layer accepts ``[f, g]``; with a
       single input, ``g = f``.

    Gradients reach ``kernel`` through the CAM only; the bias only moves the (gradient-free) argmax,
    so it is a non-trainable weight.

    Args:
        num_classes: int. Classes of the classifier the CAM comes from. Defaults to 1000 (ImageNet).

    Call arguments:
        inputs: ``f`` or ``[f, g]``, both ``(B, H, W, C)``.
        return_attention: bool. Also return the attention map ``(B, H, W)`` (for pictures).

    Output shape: ``(B, H, W, C)``, or a tuple with the ``(B, H, W)`` attention map.

    Example:

    ```python
    import numpy as np
    import keras
    from kerasflow.layers import CamSpatialAttention

    frames = np.random.default_rng(0).random((2, 7, 7, 16)).astype("float32")
    attended, attention = CamSpatialAttention(num_classes=10)(frames, return_attention=True)
    assert np.allclose(keras.ops.convert_to_numpy(attention).sum(axis=(1, 2)), 1.0)
    attended.shape  # (2, 7, 7, 16)
    ```
    """

    def __init__(self, num_classes=1000, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)

    def build(self, input_shape):
        feature_shape = input_shape[0] if isinstance(input_shape[0], (list, tuple)) else input_shape
        channels = feature_shape[-1]
        self.kernel = self.add_weight(
            name="kernel", shape=(channels, self.num_classes), initializer="glorot_uniform"
        )
        # The bias only moves the argmax, which carries no gradient: it cannot learn here.
        self.bias = self.add_weight(name="bias", shape=(self.num_classes,), initializer="zeros", trainable=False)

    def call(self, inputs, return_attention=False):
        if isinstance(inputs, (list, tuple)):
            features, attended = inputs
        else:
            features = attended = inputs
        logits = ops.matmul(ops.mean(features, axis=(1, 2)), self.kernel) + self.bias
        class_weights = ops.matmul(self._first_max(logits), ops.transpose(self.kernel))  # (B, C)
        cam = ops.einsum("bhwc,bc->bhw", features, ops.cast(class_weights, features.dtype))
        shape = ops.shape(cam)
        attention = ops.reshape(ops.softmax(ops.reshape(cam, (shape[0], -1)), axis=-1), shape)
        output = attended * ops.cast(attention, attended.dtype)[..., None]
        return (output, attention) if return_attention else output

    @staticmethod
    def _first_max(logits):
        """One-hot ``(B, K)`` of the argmax of each row (the first on a tie), carrying no gradient.

        Written with max, equality and a cumulative sum rather than ``argmax``, which Keras computes
        with bit operations that TFLite's builtin ops lack."""
        is_max = ops.cast(ops.equal(logits, ops.max(logits, axis=-1, keepdims=True)), "int32")
        first = ops.logical_and(ops.equal(is_max, 1), ops.equal(ops.cumsum(is_max, axis=-1), 1))
        return ops.stop_gradient(ops.cast(first, logits.dtype))

    def compute_output_shape(self, input_shape):
        return input_shape[0] if isinstance(input_shape[0], (list, tuple)) else input_shape

    def compute_output_spec(self, inputs, return_attention=False):
        attended = inputs[1] if isinstance(inputs, (list, tuple)) else inputs
        output = keras.KerasTensor(attended.shape, dtype=self.compute_dtype)
        if not return_attention:
            return output
        return output, keras.KerasTensor(attended.shape[:-1], dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes})
        return config
