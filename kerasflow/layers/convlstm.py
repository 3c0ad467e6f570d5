"""EgoRCNN's ConvLSTM (seed §II-B, eqs. 3-8): a convolutional LSTM with fused gates, unrolled over the clip."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerasflow")
class GlorotNormalPerGate(keras.initializers.RandomNormal):
    """Xavier-normal for a kernel whose last axis fuses ``gates`` gates, each gate on its own fans.

    EgoRCNN initialises each gate's 3x3 convolution separately (``xavier_normal``), so for a kernel
    ``(kh, kw, C_in, gates * units)`` every value is drawn from a normal with
    ``std = sqrt(2 / (kh * kw * C_in + kh * kw * units))``. Keras' ``glorot_normal`` on the fused kernel
    would count ``kh * kw * gates * units`` as the fan-out, a smaller std.

    Args:
        gates: int. How many gates the last axis holds. Defaults to 4 (i, f, c, o).
        seed: int or ``keras.random.SeedGenerator``, as for ``keras.initializers.RandomNormal``.
    """

    def __init__(self, gates=4, seed=None):
        self.gates = int(gates)
        super().__init__(mean=0.0, stddev=None, seed=seed)

    def __call__(self, shape, dtype=None):
        *window, inputs, outputs = shape
        if outputs % self.gates:
            raise ValueError(f"The last axis of `shape` must be a multiple of gates={self.gates}. Received: "
                             f"shape={shape}")
        receptive = math.prod(window)
        stddev = math.sqrt(2.0 / (receptive * inputs + receptive * (outputs // self.gates)))
        return keras.random.normal(shape, stddev=stddev, seed=self.seed, dtype=dtype)

    def get_config(self):
        return {"gates": self.gates, "seed": super().get_config()["seed"]}


@keras.saving.register_keras_serializable(package="kerasflow")
class ConvLSTM(keras.layers.Layer):
    """A 2-D convolutional LSTM over a clip of known length, from a zero state (seed eqs. 3-8).

    With ``*`` a ``kernel_size`` "same" convolution and gates in the order ``i, f, c, o`` along the last
    axis of both kernels (``keras.layers.ConvLSTM2D``'s layout, so weights move between the two):
    ``z_t = W_x * x_t + b + W_h * h_{t-1}``, ``c_t = sigmoid(z_f) . c_{t-1} + sigmoid(z_i) . tanh(z_c)``,
    ``h_t = sigmoid(z_o) . tanh(c_t)``.

    Computes what ``ConvLSTM2D`` does, faster: the input convolution runs once over all ``T`` frames
    with the four gates' kernels together, and each step adds one recurrent convolution with the fused
    kernel, where ``ConvLSTM2D`` splits both kernels into gates and runs eight convolutions per step.
    The steps are unrolled (``T`` must be known), so the graph has no loop: an export needs no
    TensorList op.

    Args:
        units: int. Channels of the hidden and cell states.
        kernel_size: int. Side of the square kernels. Defaults to 3.
        kernel_initializer, recurrent_initializer, bias_initializer: initializers of the input kernel
            ``(k, k, C, 4 * units)``, the recurrent kernel ``(k, k, units, 4 * units)`` and the bias
            ``(4 * units,)``. Default to ``GlorotNormalPerGate(4)``, the same and ``"zeros"``.

    Input shape: ``(B, T, H, W, C)`` with ``T, H, W, C`` known.
    Output: ``[h_T, h_T, c_T]``, each ``(B, H, W, units)`` (``ConvLSTM2D(return_state=True)``'s outputs).

    Example:

    ```python
    import numpy as np
    from kerasflow.layers import ConvLSTM

    clips = np.random.default_rng(0).random((2, 5, 7, 7, 16)).astype("float32")
    _, h, c = ConvLSTM(units=8)(clips)  # the hidden and cell states after the 5th frame
    c.shape  # (2, 7, 7, 8)
    ```
    """

    def __init__(
        self,
        units,
        kernel_size=3,
        kernel_initializer=None,
        recurrent_initializer=None,
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = int(units)
        self.kernel_size = int(kernel_size)
        self.kernel_initializer = keras.initializers.get(kernel_initializer or GlorotNormalPerGate(gates=4))
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer or GlorotNormalPerGate(gates=4))
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        if len(input_shape) != 5 or None in input_shape[1:]:
            raise ValueError(
                f"Expected input (B, T, H, W, C) with T, H, W and C known. Received shape: {input_shape}"
            )
        side = (self.kernel_size, self.kernel_size)
        gates = 4 * self.units
        self.kernel = self.add_weight(
            name="kernel", shape=(*side, input_shape[-1], gates), initializer=self.kernel_initializer
        )
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel", shape=(*side, self.units, gates), initializer=self.recurrent_initializer
        )
        self.bias = self.add_weight(name="bias", shape=(gates,), initializer=self.bias_initializer)

    def call(self, inputs):
        frames, height, width, channels = inputs.shape[1:]
        x = ops.reshape(inputs, (-1, height, width, channels))
        z_inputs = ops.conv(x, self.kernel, padding="same") + self.bias
        z_inputs = ops.unstack(ops.reshape(z_inputs, (-1, frames, height, width, 4 * self.units)), axis=1)
        h = c = None
        for z in z_inputs:
            if h is not None:
                z = z + ops.conv(h, self.recurrent_kernel, padding="same")
            z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
            c_new = ops.sigmoid(z_i) * ops.tanh(z_c)
            c = c_new if c is None else ops.sigmoid(z_f) * c + c_new
            h = ops.sigmoid(z_o) * ops.tanh(c)
        return [h, h, c]

    def compute_output_shape(self, input_shape):
        state = (input_shape[0], input_shape[2], input_shape[3], self.units)
        return [state, state, state]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "kernel_size": self.kernel_size,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config


def egornn_convlstm(units=512, name="convlstm", **kwargs):
    """The 512-channel 3x3 ConvLSTM of EgoRCNN's RGB stream (a ``ConvLSTM``).

    The cell is the standard one EgoRCNN runs (``MyConvLSTMCell``): with ``*`` a 3x3 convolution,
    ``i = sigmoid(W_xi * x + W_hi * h + b_i)`` (eq. 3), ``f`` (eq. 4), ``c~ = tanh(...)`` (eq. 5),
    ``c_t = i . c~ + f . c_{t-1}`` (eq. 6), ``o`` (eq. 7), ``h_t = o . tanh(c_t)`` (eq. 8). The paper's
    eq. (6) has a typo: it multiplies the candidate by the input features ``f_SA`` instead of by the
    input gate ``I_t``; the standard cell above is what EgoRCNN computes.

    EgoRCNN starts from a zero state, initialises each gate's kernels with Xavier-normal on that gate's
    own fans (``GlorotNormalPerGate``: std ``sqrt(2 / (9 * C + 9 * units))`` for the input kernel,
    ``sqrt(2 / (18 * units))`` for the recurrent one) and the biases with 0 (no forget-gate bias of 1),
    and classifies from the final *cell* state, so the layer returns its states. Parameters:
    ``2 * 9 * C * 4 * units + 4 * units`` (18,876,416 for C = units = 512).

    Input shape: ``(B, T, H, W, C)``. Output: ``[h_T, h_T, c_T]``, each ``(B, H, W, units)``.

    Example:

    ```python
    import numpy as np
    from kerasflow.layers import egornn_convlstm

    clips = np.random.default_rng(0).random((2, 4, 8, 8, 3)).astype("float32")
    _, h, c = egornn_convlstm(units=6)(clips)  # EgoRCNN classifies from the cell state c
    c.shape  # (2, 8, 8, 6)
    ```
    """
    return ConvLSTM(units, kernel_size=3, name=name, **kwargs)
