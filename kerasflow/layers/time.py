"""Moving between clip tensors ``(B, T, ...)`` and per-frame tensors ``(B * T, ...)``."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerasflow")
class FoldTime(keras.layers.Layer):
    """Merges the batch and time axes: ``(B, T, *rest)`` -> ``(B * T, *rest)``, so 2-D layers see frames.

    Example:

    ```python
    import numpy as np
    from kerasflow.layers import FoldTime

    clips = np.zeros((2, 4, 8, 8, 3), "float32")
    frames = FoldTime()(clips)  # clip 0's four frames, then clip 1's
    frames.shape  # (8, 8, 8, 3)
    ```
    """

    def call(self, inputs):
        return ops.reshape(inputs, (-1, *ops.shape(inputs)[2:]))

    def compute_output_shape(self, input_shape):
        batch, frames = input_shape[:2]
        merged = None if batch is None or frames is None else batch * frames
        return (merged, *input_shape[2:])


@keras.saving.register_keras_serializable(package="kerasflow")
class UnfoldTime(keras.layers.Layer):
    """Splits the batch axis back: ``(B * T, *rest)`` -> ``(B, T, *rest)``.

    Args:
        frames: int. ``T``, the number of frames per clip.

    Example:

    ```python
    import numpy as np
    import keras
    from kerasflow.layers import FoldTime, UnfoldTime

    frames = FoldTime()(np.zeros((2, 4, 8, 8, 3), "float32"))
    features = keras.layers.Conv2D(6, 3, padding="same")(frames)  # a 2-D layer on all 8 frames
    UnfoldTime(frames=4)(features).shape  # (2, 4, 8, 8, 6)
    ```
    """

    def __init__(self, frames, **kwargs):
        super().__init__(**kwargs)
        self.frames = int(frames)

    def call(self, inputs):
        return ops.reshape(inputs, (-1, self.frames, *ops.shape(inputs)[1:]))

    def compute_output_shape(self, input_shape):
        merged = input_shape[0]
        batch = None if merged is None else merged // self.frames
        return (batch, self.frames, *input_shape[1:])

    def get_config(self):
        config = super().get_config()
        config.update({"frames": self.frames})
        return config


@keras.saving.register_keras_serializable(package="kerasflow")
class TimeAverage(keras.layers.Layer):
    """Mean over the time axis: ``(B, T, ...)`` -> ``(B, ...)``.

    Example:

    ```python
    import numpy as np
    from kerasflow.layers import TimeAverage

    features = np.arange(12, dtype="float32").reshape(1, 3, 4)
    averaged = TimeAverage()(features)  # the mean of the 3 time steps
    averaged.shape  # (1, 4)
    ```
    """

    def call(self, inputs):
        return ops.mean(inputs, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *input_shape[2:])
