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
    # The original representation-flow code's central difference.
    "central": [[0.0, 0.0, 0.0], [-0.5, 0.0, 0.5], [0.0, 0.0, 0.0]],
}
GRADIENT_SCALE = {"sobel": 1.0 / 8.0, "central": 1.0}
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
        image_gradient: str. ``"sobel"`` (eq. 9, scaled by 1/8) or ``"central"`` (``[-0.5, 0, 0.5]``).
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

    def _forward_grad(self, u):
        """``(u[:, x+1] - u[:, x], u[y+1] - u[y])`` with 0 in the last column (resp. row), eq. (17)."""
        gx = ops.depthwise_conv(u, self.flow_grad_x, padding="valid")
        gy = ops.depthwise_conv(u, self.flow_grad_y, padding="valid")
        gx = ops.pad(gx, [[0, 0], [0, 0], [0, 1], [0, 0]])
        gy = ops.pad(gy, [[0, 0], [0, 1], [0, 0], [0, 0]])
        return gx, gy

    def _divergence(self, px, py):
        """Negative adjoint of ``_forward_grad`` (eq. 16): shift by one pixel, then a [-1, 1] kernel."""
        px = ops.pad(px[:, :, :-1], [[0, 0], [0, 0], [1, 1], [0, 0]])
        py = ops.pad(py[:, :-1], [[0, 0], [1, 1], [0, 0], [0, 0]])
        return ops.depthwise_conv(px, self.div_x, padding="valid") + ops.depthwise_conv(
            py, self.div_y, padding="valid"
        )

    def _dual_step(self, u, p_x, p_y, tau_theta):
        """Eq. (15): ``p = (p + tau/theta * grad u) / (1 + tau/theta * |grad u|)``, per flow component."""
        a, b = self._forward_grad(u)
        norm = 1.0 + tau_theta * ops.sqrt(a * a + b * b + EPSILON)
        return (p_x + tau_theta * a) / norm, (p_y + tau_theta * b) / norm

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        axes = NORMALIZE_AXES[self.normalize]
        if axes is not None:
            low = ops.min(x, axis=axes, keepdims=True)
            high = ops.max(x, axis=axes, keepdims=True)
            x = 255.0 * (x - low) / (high - low + 1e-6)

        shape = ops.shape(x)
        frames, height, width, channels = shape[1], shape[2], shape[3], shape[4]
        pairs_shape = (-1, height, width, channels)
        f1 = ops.reshape(x[:, :-1], pairs_shape)
        f2 = ops.reshape(x[:, 1:], pairs_shape)

        # Eq. (9): image gradients of F2 with symmetric padding (zero padding makes false edges).
        padded = ops.pad(f2, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="symmetric")
        grad_x = ops.depthwise_conv(padded, self.image_grad_x, padding="valid")
        grad_y = ops.depthwise_conv(padded, self.image_grad_y, padding="valid")
        grad_sq = grad_x * grad_x + grad_y * grad_y + EPSILON
        has_gradient = grad_sq > EPSILON
        safe_grad_sq = ops.where(has_gradient, grad_sq, ops.ones_like(grad_sq))

        rho_c = f2 - f1  # Eq. (11).
        theta = self.theta_weight
        lam_theta = self.lambda_weight * theta
        tau_theta = self.tau_weight / theta

        zeros = ops.zeros_like(f2)
        u_x = u_y = p11 = p12 = p21 = p22 = zeros  # Eq. (10).
        for _ in range(self.n_iter):
            rho = rho_c + grad_x * u_x + grad_y * u_y  # Eq. (12).
            # Eq. (13): the masks carry no gradient; -rho/g2 only where the image gradient is non-zero.
            threshold = lam_theta * grad_sq
            step = ops.where(
                rho < -threshold,
                lam_theta,
                ops.where(
                    rho > threshold,
                    -lam_theta,
                    ops.where(has_gradient, -rho / safe_grad_sq, zeros),
                ),
            )
            v_x = u_x + step * grad_x
            v_y = u_y + step * grad_y
            u_x = v_x + theta * self._divergence(p11, p12)  # Eq. (14), with the previous p.
            u_y = v_y + theta * self._divergence(p21, p22)
            p11, p12 = self._dual_step(u_x, p11, p12, tau_theta)
            p21, p22 = self._dual_step(u_y, p21, p22, tau_theta)

        flow = ops.concatenate([u_x, u_y], axis=-1)
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
