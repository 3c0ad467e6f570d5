"""The representation flow layer: a TV-L1 solver unrolled for a fixed number of learnable iterations.

Seed paper §II-C, Algorithm 1, eqs. (9)-(17); Piergiovanni & Ryoo, CVPR 2019. The exact computation is
pinned down in ``docs/representation-flow.md``; this module follows it step by step.
"""

import keras
from keras import ops

GRADIENT_KERNELS = {
    # Eq. (9) written as a cross-correlation and scaled by 1/8, so a unit ramp has gradient 1.
    "sobel": [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]],
    # The original representation-flow code's central difference.
    "central": [[0.0, 0.0, 0.0], [-0.5, 0.0, 0.5], [0.0, 0.0, 0.0]],
}
GRADIENT_SCALE = {"sobel": 1.0 / 8.0, "central": 1.0}
EPSILON = 1e-12


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
        theta: float. Initial value of the trainable coupling weight theta. Defaults to 0.3.
        tau: float. Initial value of the trainable dual step tau. Defaults to 0.25.
        lambda_: float. Initial value of the trainable data weight lambda. Defaults to 0.15.
        image_gradient: str. ``"sobel"`` (eq. 9, scaled by 1/8) or ``"central"`` (``[-0.5, 0, 0.5]``).
        normalize: bool. Min-max rescale each sample and channel to ``[0, 255]`` over ``(T, H, W)``
            first. Defaults to True.
        trainable_kernels: bool. Whether the image-gradient kernels and the ``[-1, 1]`` gradient and
            divergence kernels train. Defaults to True.

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
        normalize=True,
        trainable_kernels=True,
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
        self.normalize = bool(normalize)
        self.trainable_kernels = bool(trainable_kernels)

    def build(self, input_shape):
        if len(input_shape) != 5:
            raise ValueError(f"Expected input (B, T, H, W, C). Received shape: {input_shape}")
        if input_shape[1] is not None and input_shape[1] < 2:
            raise ValueError(f"Need at least 2 frames. Received shape: {input_shape}")
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"The channel dimension must be known. Received shape: {input_shape}")

        def scalar(name, value):
            return self.add_weight(
                name=name, shape=(), initializer=keras.initializers.Constant(value), trainable=True
            )

        self.theta_weight = scalar("theta", self.theta)
        self.tau_weight = scalar("tau", self.tau)
        self.lambda_weight = scalar("lambda", self.lambda_)

        def kernel(name, taps):
            return self.add_weight(
                name=name,
                shape=(len(taps), len(taps[0]), channels, 1),
                initializer=_channel_kernel(taps, channels),
                trainable=self.trainable_kernels,
            )

        taps = GRADIENT_KERNELS[self.image_gradient]
        scale = GRADIENT_SCALE[self.image_gradient]
        taps_x = [[scale * v for v in row] for row in taps]
        taps_y = [list(col) for col in zip(*taps_x)]
        self.image_grad_x = kernel("image_grad_x", taps_x)
        self.image_grad_y = kernel("image_grad_y", taps_y)
        # Eqs. (16)-(17): separate [-1, 1] kernels for grad(u) and for div(p), as the references train them.
        self.flow_grad_x = kernel("flow_grad_x", [[-1.0, 1.0]])
        self.flow_grad_y = kernel("flow_grad_y", [[-1.0], [1.0]])
        self.div_x = kernel("div_x", [[-1.0, 1.0]])
        self.div_y = kernel("div_y", [[-1.0], [1.0]])

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
        if self.normalize:
            low = ops.min(x, axis=(1, 2, 3), keepdims=True)
            high = ops.max(x, axis=(1, 2, 3), keepdims=True)
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
                "trainable_kernels": self.trainable_kernels,
            }
        )
        return config
