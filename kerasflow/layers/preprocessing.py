"""Preprocessing inside the model: raw uint8 frames in, the backbone's normalisation out.

A saved or exported model then takes what a client has (decoded, cropped uint8 frames), and no copy
of the training pipeline's normalisation is needed to serve it.
"""

import keras
from keras import ops

# ImageNet statistics of the torchvision ResNets (per RGB channel), and the single-channel statistics
# ego-rnn applies to its 8-bit TV-L1 flow planes (the average of the three).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FLOW_MEAN = (0.449,)
FLOW_STD = (0.226,)


@keras.saving.register_keras_serializable(package="kerasflow")
class FrameNormalization(keras.layers.Layer):
    """``(x / 255 - mean) / std`` on the last axis, for uint8 (or 0..255) frames of any shape.

    Args:
        mean: sequence of floats, one per channel (or one for all channels). Defaults to ImageNet's.
        std: sequence of floats, likewise. Defaults to ImageNet's.

    Input: any shape ``(..., C)``, uint8 or float in 0..255. Output: the same shape, in the layer's
    compute dtype.

    Example:

    ```python
    import numpy as np
    from kerasflow.layers import FrameNormalization

    frames = np.full((1, 2, 4, 4, 3), 255, np.uint8)
    normalised = FrameNormalization()(frames)  # white: (1 - mean) / std per channel
    normalised.shape  # (1, 2, 4, 4, 3)
    ```
    """

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD, **kwargs):
        super().__init__(**kwargs)
        self.mean = tuple(float(value) for value in mean)
        self.std = tuple(float(value) for value in std)
        if len(self.mean) != len(self.std) or not self.mean:
            raise ValueError(f"`mean` and `std` need the same non-zero length. Received: mean={mean}, std={std}")

    def call(self, inputs):
        scale = ops.convert_to_tensor([1.0 / (255.0 * s) for s in self.std], dtype=self.compute_dtype)
        offset = ops.convert_to_tensor([m / s for m, s in zip(self.mean, self.std)], dtype=self.compute_dtype)
        return ops.cast(inputs, self.compute_dtype) * scale - offset

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update({"mean": list(self.mean), "std": list(self.std)})
        return config
