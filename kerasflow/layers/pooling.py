"""3-D max pooling in operations that TFLite has as builtins (it has no 3-D max pool)."""

import keras
from keras import ops


def _pooled_length(length, pool_size, strides):
    return None if length is None else (length - pool_size) // strides + 1


@keras.saving.register_keras_serializable(package="kerasflow")
class SeparableMaxPooling3D(keras.layers.Layer):
    """Max pooling over time, height and width with a cubic window and no padding, computed as the
    maximum over each time window followed by a 2-D max pool of every frame.

    The maximum over a box is the maximum over its time slices of the maxima over each slice's square,
    so the result equals ``keras.layers.MaxPooling3D(pool_size, strides)``; only the operations differ
    (strided slices, elementwise maxima and a 2-D max pool, all TFLite builtins).

    Args:
        pool_size: int. Window length in time, height and width. Defaults to 3.
        strides: int. Step in time, height and width. Defaults to 2.

    Input shape: ``(B, T, H, W, C)``.
    Output shape: ``(B, T', H', W', C)`` with ``T' = (T - pool_size) // strides + 1``, likewise ``H'``, ``W'``.

    Example:

    ```python
    import numpy as np
    from kerasflow.layers import SeparableMaxPooling3D

    clips = np.random.default_rng(0).random((2, 7, 9, 9, 4)).astype("float32")
    SeparableMaxPooling3D(pool_size=3, strides=2)(clips).shape  # (2, 3, 4, 4, 4)
    ```
    """

    def __init__(self, pool_size=3, strides=2, **kwargs):
        if int(pool_size) < 1 or int(strides) < 1:
            raise ValueError(
                f"`pool_size` and `strides` must be positive. Received: pool_size={pool_size}, strides={strides}"
            )
        super().__init__(**kwargs)
        self.pool_size = int(pool_size)
        self.strides = int(strides)

    def call(self, inputs):
        shape = ops.shape(inputs)
        frames = (shape[1] - self.pool_size) // self.strides + 1
        span = (frames - 1) * self.strides + 1  # input frames from the first window's start to the last's
        pooled = inputs[:, 0:span:self.strides]
        for offset in range(1, self.pool_size):
            pooled = ops.maximum(pooled, inputs[:, offset : offset + span : self.strides])
        per_frame = ops.reshape(pooled, (-1, shape[2], shape[3], shape[4]))
        per_frame = ops.max_pool(per_frame, self.pool_size, self.strides, padding="valid")
        return ops.reshape(per_frame, (-1, frames, *ops.shape(per_frame)[1:]))

    def compute_output_shape(self, input_shape):
        batch, frames, height, width, channels = input_shape
        size, step = self.pool_size, self.strides
        return (batch, _pooled_length(frames, size, step), _pooled_length(height, size, step),
                _pooled_length(width, size, step), channels)

    def get_config(self):
        config = super().get_config()
        config.update({"pool_size": self.pool_size, "strides": self.strides})
        return config
