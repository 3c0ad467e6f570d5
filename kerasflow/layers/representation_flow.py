"""The representation flow layer: a TV-L1 solver unrolled for a fixed number of learnable iterations.

Seed paper §II-C, Algorithm 1, eqs. (9)-(17); Piergiovanni & Ryoo, CVPR 2019. The exact computation is
pinned down in ``docs/representation-flow.md``; this module follows it step by step.
"""

import numbers

import keras
import numpy as np
from keras import ops

GRADIENT_KERNELS = {
    # Eq. (9) written as a cross-correlation and scaled by 1/8, so a unit ramp has gradient 1.
    "sobel": [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]],
    # The central difference [-0.5, 0, 0.5]: with symmetric padding, OpenCV's TV-L1 gradient.
    "central": [[0.0, 0.0, 0.0], [-0.5, 0.0, 0.5], [0.0, 0.0, 0.0]],
    # The representation-flow code's rule: the central difference inside, F1's one-sided half
    # difference in the first and last column (row); see ``RepresentationFlow._image_gradients``.
    "reference": [[0.0, 0.0, 0.0], [-0.5, 0.0, 0.5], [0.0, 0.0, 0.0]],
}
GRADIENT_SCALE = {"sobel": 1.0 / 8.0, "central": 1.0, "reference": 1.0}
EPSILON = 1e-12
# What the min-max rescaling to [0, 255] takes its min and max over (axes of (B, T, H, W, C)).
NORMALIZE_AXES = {"sample": (1, 2, 3, 4), "sample_channel": (1, 2, 3), "none": None}
# The booleans of files saved before the modes existed.
LEGACY_NORMALIZE = {True: "sample_channel", False: "none"}
# The reference code's `params`, in its order; the default is the author's best setting (1 = trains).
LEARNABLE_NAMES = ("image_gradient", "grad_div", "theta", "lambda", "tau")
DEFAULT_LEARNABLE = (False, True, True, True, True)
# The floor that theta, tau and lambda are clamped to after every optimiser step.
PARAMETER_FLOOR = 1e-4


def normalize_mode(normalize):
    """``"sample"``, ``"sample_channel"`` or ``"none"``; the booleans are read as their legacy meaning."""
    if isinstance(normalize, bool):
        return LEGACY_NORMALIZE[normalize]
    if isinstance(normalize, str) and normalize in NORMALIZE_AXES:
        return normalize
    raise ValueError(
        f"`normalize` must be one of {list(NORMALIZE_AXES)} (or True / False, read as "
        f"'sample_channel' / 'none'). Received: normalize={normalize!r}"
    )


def learnable_flags(learnable):
    """Five booleans, in the order of ``LEARNABLE_NAMES``, from five booleans or 0/1 integers."""
    try:
        flags = None if isinstance(learnable, (str, bytes)) else list(learnable)
    except TypeError:  # not a sequence
        flags = None
    if (
        flags is None
        or len(flags) != len(LEARNABLE_NAMES)
        or not all(isinstance(f, (numbers.Integral, np.bool_)) and f in (0, 1) for f in flags)
    ):
        raise ValueError(
            f"`learnable` must be {len(LEARNABLE_NAMES)} booleans or 0/1 integers, for "
            f"{list(LEARNABLE_NAMES)}. Received: learnable={learnable!r}"
        )
    return tuple(bool(f) for f in flags)


def upgrade_flow_options(options):
    """Reads the ``RepresentationFlow`` arguments of a file saved before ``learnable`` existed: its
    ``trainable_kernels`` flag covered all six kernels, and the three scalars always trained."""
    options = dict(options)
    if "trainable_kernels" in options:
        kernels = int(bool(options.pop("trainable_kernels")))
        options.setdefault("learnable", [kernels, kernels, 1, 1, 1])
    return options


@keras.saving.register_keras_serializable(package="kerasflow")
class PositiveFloor(keras.constraints.Constraint):
    """Clamps a weight to ``>= minimum`` (applied by the optimiser after each step).

    Args:
        minimum: float. The smallest value the weight may take. Defaults to 1e-4.
    """

    def __init__(self, minimum=PARAMETER_FLOOR):
        self.minimum = float(minimum)

    def __call__(self, w):
        return ops.maximum(w, ops.cast(self.minimum, w.dtype))

    def get_config(self):
        return {"minimum": self.minimum}


def _channel_kernel(taps, channels):
    """A constant initializer for a depthwise kernel ``(kh, kw, channels, 1)`` with the same taps per channel."""

    def initializer(shape, dtype=None):
        kernel = ops.convert_to_tensor(taps, dtype="float32")[:, :, None, None]
        return ops.cast(ops.tile(kernel, (1, 1, channels, 1)), dtype or "float32")

    return initializer


@keras.saving.register_keras_serializable(package="kerasflow")
class RepresentationFlow(keras.layers.Layer):
    """Learnable TV-L1 flow between consecutive frames of a feature map (seed §II-C, Algorithm 1).

    For each pair ``F1 = x[:, t]``, ``F2 = x[:, t + 1]`` and each channel independently:
    image gradients of ``F2`` (eq. 9), ``rho_c = F2 - F1`` (eq. 11), ``u = p = 0`` (eq. 10), then
    ``n_iter`` times the residual (eq. 12), the thresholding step (eq. 13), the primal update with the
    divergence of the dual field (eqs. 14, 16) and the dual update with the forward gradient of ``u``
    (eqs. 15, 17). Which gradient eq. (17) means is under-specified in the paper; as every reference
    implementation does, ``grad`` is the forward difference and ``div`` its negative adjoint.

    Always computes in float32, also under a ``mixed_float16`` policy.

    Args:
        n_iter: int. Number of unrolled TV-L1 iterations. Defaults to 20.
        theta: float. Initial value of the coupling weight theta. Defaults to 0.3.
        tau: float. Initial value of the dual step tau. Defaults to 0.25.
        lambda_: float. Initial value of the data weight lambda. Defaults to 0.15.
        image_gradient: str. How the image gradients of eq. (9) are taken, with symmetric padding:
            ``"sobel"`` (eq. 9, scaled by 1/8; the default), ``"central"`` (``[-0.5, 0, 0.5]``: at
            one scale and one warp the layer then computes OpenCV's ``DualTVL1OpticalFlow``), or
            ``"reference"``: the representation-flow code's rule, ``[-0.5, 0, 0.5]`` of ``F2`` inside
            the map but ``0.5 * (F1[1] - F1[0])`` and ``0.5 * (F1[-1] - F1[-2])`` in the first and
            last column (row), and ``1e-12`` added to the residual ``rho`` in every iteration.
        normalize: str. The min-max rescaling to ``[0, 255]`` done first:
            ``255 * (x - min) / (max - min + 1e-6)``, with min and max per sample over
            ``(T, H, W, C)`` for ``"sample"`` (the default), per sample and channel over ``(T, H, W)``
            for ``"sample_channel"``, and no rescaling for ``"none"``. ``True`` and ``False`` are read
            as ``"sample_channel"`` and ``"none"`` (their meaning in older files).
        learnable: five booleans or 0/1 ints, which parameters train, in the reference code's order
            ``[image_gradient, grad_div, theta, lambda, tau]``: the two image-gradient kernels, the four
            ``[-1, 1]`` kernels of ``grad`` and ``div``, and the three scalars. Defaults to
            ``(False, True, True, True, True)``, the original author's best setting.

    theta, tau and lambda are kept ``>= 1e-4`` after every optimiser step (``PositiveFloor``).
    ``flow_parameters`` lists the layer's nine variables, trainable or not, e.g. for an optimiser group.

    Input shape: ``(B, T, H, W, C)`` with ``T >= 2``.
    Output shape: ``(B, T - 1, H, W, 2 * C)``: ``concat([u_x, u_y], axis=-1)`` per frame pair.

    Example:

    ```python
    import numpy as np
    from kerasflow.layers import RepresentationFlow

    clips = np.random.default_rng(0).random((2, 4, 8, 8, 3)).astype("float32")
    flow = RepresentationFlow(n_iter=5)(clips)  # one (u_x, u_y) map per pair of frames
    flow.shape  # (2, 3, 8, 8, 6)
    ```
    """

    def __init__(
        self,
        n_iter=20,
        theta=0.3,
        tau=0.25,
        lambda_=0.15,
        image_gradient="sobel",
        normalize="sample",
        learnable=DEFAULT_LEARNABLE,
        **kwargs,
    ):
        if int(n_iter) < 1:
            raise ValueError(f"`n_iter` must be >= 1. Received: n_iter={n_iter}")
        if image_gradient not in GRADIENT_KERNELS:
            raise ValueError(
                f"`image_gradient` must be one of {sorted(GRADIENT_KERNELS)}. "
                f"Received: image_gradient={image_gradient!r}"
            )
        # Always float32 (variables and computation): the 1e-12 terms vanish in float16.
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.n_iter = int(n_iter)
        self.theta = float(theta)
        self.tau = float(tau)
        self.lambda_ = float(lambda_)
        self.image_gradient = image_gradient
        self.normalize = normalize_mode(normalize)
        self.learnable = learnable_flags(learnable)

    def build(self, input_shape):
        if len(input_shape) != 5:
            raise ValueError(f"Expected input (B, T, H, W, C). Received shape: {input_shape}")
        if input_shape[1] is not None and input_shape[1] < 2:
            raise ValueError(f"Need at least 2 frames. Received shape: {input_shape}")
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"The channel dimension must be known. Received shape: {input_shape}")
        if self.image_gradient == "reference" and any(size is not None and size < 2 for size in input_shape[2:4]):
            raise ValueError("image_gradient='reference' takes one-sided differences at the borders, so height "
                             f"and width must be at least 2. Received shape: {input_shape}")

        learns = dict(zip(LEARNABLE_NAMES, self.learnable))

        def scalar(name, value):
            return self.add_weight(
                name=name,
                shape=(),
                initializer=keras.initializers.Constant(value),
                constraint=PositiveFloor(),
                trainable=learns[name],
            )

        self.theta_weight = scalar("theta", self.theta)
        self.tau_weight = scalar("tau", self.tau)
        self.lambda_weight = scalar("lambda", self.lambda_)

        def kernel(name, taps, group):
            return self.add_weight(
                name=name,
                shape=(len(taps), len(taps[0]), channels, 1),
                initializer=_channel_kernel(taps, channels),
                trainable=learns[group],
            )

        taps = GRADIENT_KERNELS[self.image_gradient]
        scale = GRADIENT_SCALE[self.image_gradient]
        taps_x = [[scale * v for v in row] for row in taps]
        taps_y = [list(col) for col in zip(*taps_x)]
        self.image_grad_x = kernel("image_grad_x", taps_x, "image_gradient")
        self.image_grad_y = kernel("image_grad_y", taps_y, "image_gradient")
        # Eqs. (16)-(17): separate [-1, 1] kernels for grad(u) and for div(p), as the references train them.
        self.flow_grad_x = kernel("flow_grad_x", [[-1.0, 1.0]], "grad_div")
        self.flow_grad_y = kernel("flow_grad_y", [[-1.0], [1.0]], "grad_div")
        self.div_x = kernel("div_x", [[-1.0, 1.0]], "grad_div")
        self.div_y = kernel("div_y", [[-1.0], [1.0]], "grad_div")

    @property
    def flow_parameters(self):
        """The layer's own variables, trainable or not: theta, tau, lambda and the six kernels."""
        if not self.built:
            return []
        return [
            self.theta_weight,
            self.tau_weight,
            self.lambda_weight,
            self.image_grad_x,
            self.image_grad_y,
            self.flow_grad_x,
            self.flow_grad_y,
            self.div_x,
            self.div_y,
        ]

    def _taps(self):
        """The two taps of each ``[-1, 1]`` kernel as ``(channels,)`` vectors: ``{name: (first, second)}``."""
        taps = {}
        for name, kernel, vertical in (
            ("grad_x", self.flow_grad_x, False),
            ("grad_y", self.flow_grad_y, True),
            ("div_x", self.div_x, False),
            ("div_y", self.div_y, True),
        ):
            pair = kernel[:, 0, :, 0] if vertical else kernel[0, :, :, 0]
            taps[name] = (pair[0], pair[1])
        return taps

    def _image_gradients(self, f1, f2):
        """Eq. (9) on ``f2`` ``(N, H, W, C)`` with symmetric padding (zero padding makes false edges);
        ``"reference"`` then overwrites the border columns (rows) with ``f1``'s one-sided half difference."""
        padded = ops.pad(f2, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="symmetric")
        grad_x = ops.depthwise_conv(padded, self.image_grad_x, padding="valid")
        grad_y = ops.depthwise_conv(padded, self.image_grad_y, padding="valid")
        if self.image_gradient == "reference":
            grad_x = ops.concatenate([0.5 * (f1[:, :, 1:2] - f1[:, :, :1]), grad_x[:, :, 1:-1],
                                      0.5 * (f1[:, :, -1:] - f1[:, :, -2:-1])], axis=2)
            grad_y = ops.concatenate([0.5 * (f1[:, 1:2] - f1[:, :1]), grad_y[:, 1:-1],
                                      0.5 * (f1[:, -1:] - f1[:, -2:-1])], axis=1)
        return grad_x, grad_y

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        axes = NORMALIZE_AXES[self.normalize]
        if axes is not None:
            low = ops.min(x, axis=axes, keepdims=True)
            high = ops.max(x, axis=axes, keepdims=True)
            x = 255.0 * (x - low) / (high - low + 1e-6)

        shape = ops.shape(x)
        frames, height, width, channels = shape[1], shape[2], shape[3], shape[4]
        pixels = height * width
        pairs_shape = (-1, height, width, channels)
        f1 = ops.reshape(x[:, :-1], pairs_shape)
        f2 = ops.reshape(x[:, 1:], pairs_shape)
        grad_x, grad_y = self._image_gradients(f1, f2)
        grad_sq = grad_x * grad_x + grad_y * grad_y + EPSILON

        # The iterations run on pixels-first maps (2, H*W, N, C), flow component first: u = (u_x, u_y)
        # and the dual fields p_x = (p11, p21), p_y = (p12, p22). A one-pixel shift is then a roll along
        # the pixel axis, and the boundary rows and columns of eqs. (16)-(17) are masks (see below).
        def pixels_first(t):  # (N, H, W, C) -> (H*W, N, C)
            return ops.reshape(ops.transpose(t, (1, 2, 0, 3)), (pixels, -1, channels))

        grads = ops.reshape(ops.transpose(ops.stack([grad_x, grad_y]), (0, 2, 3, 1, 4)), (2, pixels, -1, channels))
        # 1 / |grad I|^2 where the image gradient is non-zero; elsewhere grads are 0, so any value works.
        inv_sq = pixels_first(1.0 / ops.where(grad_sq > EPSILON, grad_sq, ops.ones_like(grad_sq)))
        scaled_grads = grads * inv_sq
        rho_c = f2 - f1 + EPSILON if self.image_gradient == "reference" else f2 - f1
        start = pixels_first(-rho_c) * inv_sq  # -rho_c / |grad I|^2, eq. (11).

        theta = self.theta_weight
        lam_theta = self.lambda_weight * theta
        tau_theta = self.tau_weight / theta
        # grad(u) is 0 in the last column (x) and the last row (y), eq. (17); p then stays 0 there, so
        # div(p)'s shifted taps read 0 across row ends and at the first row, as its zero padding does.
        position = ops.arange(pixels)
        not_last_col = ops.cast(ops.not_equal(position % width, width - 1), "float32")[:, None, None]
        not_last_row = ops.cast(position < (height - 1) * width, "float32")[:, None, None]
        taps = self._taps()
        grad_x0, grad_x1 = (tau_theta * t * not_last_col for t in taps["grad_x"])
        grad_y0, grad_y1 = (tau_theta * t * not_last_row for t in taps["grad_y"])
        div_x0, div_x1 = (theta * t for t in taps["div_x"])
        div_y0, div_y1 = (theta * t for t in taps["div_y"])
        norm_epsilon = tau_theta * tau_theta * EPSILON

        u = p_x = p_y = ops.zeros_like(grads)  # Eq. (10).
        for iteration in range(self.n_iter):
            # Eqs. (12)-(13) divided by |grad I|^2: the step is -rho / |grad I|^2 clipped to +-lambda*theta.
            step = ops.clip(start - ops.sum(scaled_grads * u, axis=0), -lam_theta, lam_theta)
            u = u + grads * step
            if iteration:  # Eq. (14): u = v + theta * div(p), with the previous p (0 at first).
                u = (u + div_x1 * p_x + div_x0 * ops.roll(p_x, 1, axis=1)
                     + div_y1 * p_y + div_y0 * ops.roll(p_y, width, axis=1))
            # Eq. (15): p = (p + tau/theta grad u) / (1 + tau/theta |grad u|), both components at once.
            step_x = grad_x0 * u + grad_x1 * ops.roll(u, -1, axis=1)
            step_y = grad_y0 * u + grad_y1 * ops.roll(u, -width, axis=1)
            scale = 1.0 / (1.0 + ops.sqrt(step_x * step_x + step_y * step_y + norm_epsilon))
            p_x = (p_x + step_x) * scale
            p_y = (p_y + step_y) * scale

        flow = ops.reshape(u, (2, height, width, -1, frames - 1, channels))
        flow = ops.transpose(flow, (3, 4, 1, 2, 0, 5))
        return ops.reshape(flow, (-1, frames - 1, height, width, 2 * channels))

    def compute_output_shape(self, input_shape):
        batch, frames, height, width, channels = input_shape
        return (batch, None if frames is None else frames - 1, height, width, 2 * channels)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "n_iter": self.n_iter,
                "theta": self.theta,
                "tau": self.tau,
                "lambda_": self.lambda_,
                "image_gradient": self.image_gradient,
                "normalize": self.normalize,
                "learnable": [int(f) for f in self.learnable],
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        return super().from_config(upgrade_flow_options(config))
