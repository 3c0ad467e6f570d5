"""The "flow of flow" block that puts representation flow layers inside a ResNet (seed §II-D, §III-A)."""

import keras
from keras import ops

from kerasflow.layers.initializers import kaiming_normal_fan_out
from kerasflow.layers.representation_flow import RepresentationFlow, upgrade_flow_options

# The original's BatchNorm3d: torch's eps 1e-5 and momentum 0.1 (Keras counts momentum the other way).
NORM_EPSILON = 1e-5
NORM_MOMENTUM = 0.9

def _frame_conv(filters, kernel_size, use_bias, name):
    """A per-frame 2-D convolution on ``(B, T, H, W, C)``: a Conv3D whose kernel spans one frame."""
    return keras.layers.Conv3D(
        filters, (1, kernel_size, kernel_size), padding="same", use_bias=use_bias,
        kernel_initializer=kaiming_normal_fan_out(), name=name,
    )


@keras.saving.register_keras_serializable(package="kerasflow")
class RepresentationFlowBlock(keras.layers.Layer):
    """1-3 representation flow layers with convolutions between them and a time-averaged residual.

    On ``x`` of shape ``(B, T, H, W, C)``, with ``L = num_flow_layers`` and ``b = bottleneck``:
    1. ``h = Conv1x1(C -> b, no bias)(x)`` per frame.
    2. For ``k = 1..L``: if ``k > 1``, ``h = Conv1x1(2b -> b, no bias)(h)``; then
       ``h = RepresentationFlow(h)`` (one frame fewer, ``2b`` channels, eqs. 9-17); if ``k < L``,
       ``h = Conv3x3(2b -> 2b)(h)``, the convolution between flow layers that keeps the flow
       consistent (§II-D); with a bias unless ``smooth_bias`` is False.
    3. ``h = BatchNorm(Conv3x3(2b -> C, no bias)(h))`` with the scale (gamma) initialised to 0, so a
       new block starts as the identity of its residual (§III-A restores the channel count). The batch
       norm is the original's: epsilon 1e-5, momentum 0.9 (torch's 0.1).
    4. Output ``ReLU(h + r)``, where ``r`` is the mean of ``x`` over each window of ``L + 1``
       consecutive frames.

    Args:
        num_flow_layers: int in 1..3. Defaults to 2 (the paper's best, Table 5).
        bottleneck: int. Channels the flow layers work on. Defaults to 32 (§III-A).
        n_iter: int. Iterations of each flow layer. Defaults to 20 (Table 6).
        flow_options: dict. Further ``RepresentationFlow`` arguments for every flow layer (``theta``,
            ``tau``, ``lambda_``, ``image_gradient``, ``normalize``, ``learnable``). Defaults to the
            layer's own.
        smooth_bias: bool. Whether the 3x3 convolutions between flow layers have a bias. Defaults to
            True (the per-frame stream's block); the representation-flow code's inflated network
            (``flow_2p1d_resnets.py``) has none: with 2 flow layers, its block is this one without
            that bias (its flow layers normalise over the whole batch, ours per ``normalize``).

    ``flow_parameters`` lists the variables of all its flow layers (theta, tau, lambda and the six
    kernels of each), trainable or not, e.g. for an optimiser group of their own.

    Input shape: ``(B, T, H, W, C)`` with ``T > num_flow_layers``.
    Output shape: ``(B, T - num_flow_layers, H, W, C)``.

    Example:

    ```python
    import numpy as np
    from kerasflow.layers import RepresentationFlowBlock

    features = np.random.default_rng(0).random((2, 5, 8, 8, 16)).astype("float32")
    block = RepresentationFlowBlock(num_flow_layers=2, bottleneck=4, n_iter=3)
    # A new block is ReLU of the running mean of its input over 3 frames (gamma starts at 0).
    y = block(features)
    y.shape  # (2, 3, 8, 8, 16)
    ```
    """

    def __init__(self, num_flow_layers=2, bottleneck=32, n_iter=20, flow_options=None, smooth_bias=True,
                 **kwargs):
        if int(num_flow_layers) not in (1, 2, 3):
            raise ValueError(
                f"`num_flow_layers` must be 1, 2 or 3 (0 means: no block). "
                f"Received: num_flow_layers={num_flow_layers}"
            )
        super().__init__(**kwargs)
        self.num_flow_layers = int(num_flow_layers)
        self.bottleneck = int(bottleneck)
        self.n_iter = int(n_iter)
        self.flow_options = dict(flow_options or {})
        self.smooth_bias = bool(smooth_bias)
        width = self.bottleneck
        self.reduce = _frame_conv(width, 1, False, "reduce")
        self.flows, self.between, self.re_reduce = [], [], []
        for k in range(1, self.num_flow_layers + 1):
            if k > 1:
                self.re_reduce.append(_frame_conv(width, 1, False, f"reduce_{k}"))
            self.flows.append(
                RepresentationFlow(n_iter=self.n_iter, name=f"flow_{k}", **self.flow_options)
            )
            if k < self.num_flow_layers:
                self.between.append(_frame_conv(2 * width, 3, self.smooth_bias, f"smooth_{k}"))
        self.expand = None
        self.norm = keras.layers.BatchNormalization(
            momentum=NORM_MOMENTUM, epsilon=NORM_EPSILON, gamma_initializer="zeros", name="norm"
        )

    def build(self, input_shape):
        channels = input_shape[-1]
        frames = input_shape[1]
        if frames is not None and frames <= self.num_flow_layers:
            raise ValueError(
                f"Need more than {self.num_flow_layers} frames for {self.num_flow_layers} flow "
                f"layers. Received shape: {input_shape}"
            )
        self.expand = _frame_conv(channels, 3, False, "expand")
        batch, _, height, width, _ = input_shape
        shape = (batch, frames, height, width, channels)
        self.reduce.build(shape)
        shape = self.reduce.compute_output_shape(shape)
        for k, flow in enumerate(self.flows):
            if k > 0:
                self.re_reduce[k - 1].build(shape)
                shape = self.re_reduce[k - 1].compute_output_shape(shape)
            flow.build(shape)
            shape = flow.compute_output_shape(shape)
            if k < len(self.between):
                self.between[k].build(shape)
                shape = self.between[k].compute_output_shape(shape)
        self.expand.build(shape)
        shape = self.expand.compute_output_shape(shape)
        self.norm.build(shape)

    @property
    def flow_parameters(self):
        """The variables of every flow layer, trainable or not (see ``RepresentationFlow``)."""
        return [weight for flow in self.flows for weight in flow.flow_parameters]

    def call(self, inputs, training=None):
        h = self.reduce(inputs)
        for k, flow in enumerate(self.flows):
            if k > 0:
                h = self.re_reduce[k - 1](h)
            h = flow(h)
            if k < len(self.between):
                h = self.between[k](h)
        h = self.norm(self.expand(h), training=training)
        window = self.num_flow_layers + 1
        frames = ops.shape(inputs)[1]
        residual = sum(inputs[:, i : frames - window + 1 + i] for i in range(window)) / window
        return ops.relu(h + ops.cast(residual, h.dtype))

    def compute_output_shape(self, input_shape):
        batch, frames, height, width, channels = input_shape
        frames = None if frames is None else frames - self.num_flow_layers
        return (batch, frames, height, width, channels)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_flow_layers": self.num_flow_layers,
                "bottleneck": self.bottleneck,
                "n_iter": self.n_iter,
                "flow_options": dict(self.flow_options),
                "smooth_bias": self.smooth_bias,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["flow_options"] = upgrade_flow_options(config.get("flow_options") or {})
        return super().from_config(config)
