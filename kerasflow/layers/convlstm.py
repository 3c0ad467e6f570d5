"""EgoRCNN's ConvLSTM (seed §II-B, eqs. 3-8) as a configured ``keras.layers.ConvLSTM2D``."""

import math

import keras


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
            raise ValueError(f"The last axis ({outputs}) is not a multiple of gates={self.gates}.")
        receptive = math.prod(window)
        stddev = math.sqrt(2.0 / (receptive * inputs + receptive * (outputs // self.gates)))
        return keras.random.normal(shape, stddev=stddev, seed=self.seed, dtype=dtype)

    def get_config(self):
        return {"gates": self.gates, "seed": super().get_config()["seed"]}


def egornn_convlstm(units=512, name="convlstm", **kwargs):
    """The 512-channel 3x3 ConvLSTM of EgoRCNN's RGB stream, as ``keras.layers.ConvLSTM2D``.

    Keras' cell is the standard one EgoRCNN runs (``MyConvLSTMCell``): with ``*`` a 3x3 convolution,
    ``i = sigmoid(W_xi * x + W_hi * h + b_i)`` (eq. 3), ``f`` (eq. 4), ``c~ = tanh(...)`` (eq. 5),
    ``c_t = i . c~ + f . c_{t-1}`` (eq. 6), ``o`` (eq. 7), ``h_t = o . tanh(c_t)`` (eq. 8). The paper's
    eq. (6) has a typo: it multiplies the candidate by the input features ``f_SA`` instead of by the
    input gate ``I_t``; the standard cell above is what EgoRCNN computes.

    EgoRCNN starts from a zero state, initialises each gate's kernels with Xavier-normal on that gate's
    own fans (``GlorotNormalPerGate``: std ``sqrt(2 / (9 * C + 9 * units))`` for the input kernel,
    ``sqrt(2 / (18 * units))`` for the recurrent one) and the biases with 0 (no forget-gate bias of 1),
    and classifies from the final *cell* state, so the layer returns its states. Parameters: ``2 * 9 * C * 4 * units + 4 * units`` (18,876,416 for C = units = 512).

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
    return keras.layers.ConvLSTM2D(
        units,
        kernel_size=3,
        padding="same",
        kernel_initializer=GlorotNormalPerGate(gates=4),
        recurrent_initializer=GlorotNormalPerGate(gates=4),
        bias_initializer="zeros",
        unit_forget_bias=False,
        return_state=True,
        name=name,
        **kwargs,
    )
