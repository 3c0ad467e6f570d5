"""RepresentationFlow and RepresentationFlowBlock against an independent NumPy reading of the spec."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_testing import run_layer_test

from kerasflow.layers import RepresentationFlow, RepresentationFlowBlock
from kerasflow.layers.representation_flow import PositiveFloor

SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float64) / 8.0
CENTRAL_X = np.array([[0, 0, 0], [-0.5, 0, 0.5], [0, 0, 0]], np.float64)
# The axes of (B, T, H, W, C) that each normalisation mode takes its min and max over.
MIN_MAX_AXES = {"sample": (1, 2, 3, 4), "sample_channel": (1, 2, 3), "none": None}
ALL_FLOW_WEIGHTS = ["theta", "tau", "lambda", "image_grad_x", "image_grad_y", "flow_grad_x", "flow_grad_y",
                    "div_x", "div_y"]


def reference_flow(x, n_iter, theta=0.3, tau=0.25, lam=0.15, image_gradient="sobel", normalize="sample"):
    """docs/representation-flow.md in float64 NumPy, with explicit boundary formulas."""
    x = x.astype(np.float64)
    axes = MIN_MAX_AXES[normalize]
    if axes is not None:
        low = x.min(axis=axes, keepdims=True)
        high = x.max(axis=axes, keepdims=True)
        x = 255.0 * (x - low) / (high - low + 1e-6)
    f1, f2 = x[:, :-1], x[:, 1:]
    height, width = x.shape[2], x.shape[3]
    kx = SOBEL_X if image_gradient == "sobel" else CENTRAL_X
    ky = kx.T
    padded = np.pad(f2, ((0, 0), (0, 0), (1, 1), (1, 1), (0, 0)), mode="symmetric")
    gx = np.zeros_like(f2)
    gy = np.zeros_like(f2)
    for i in range(3):
        for j in range(3):
            window = padded[:, :, i : i + height, j : j + width]
            gx += kx[i, j] * window
            gy += ky[i, j] * window
    rho_epsilon = 0.0
    if image_gradient == "reference":
        # The representation-flow code's rule, read from issue 20's text: F2's central difference inside,
        # F1's one-sided half difference in the first and last column (row), 1e-12 added to rho.
        gx[:, :, :, 1:-1] = 0.5 * (f2[:, :, :, 2:] - f2[:, :, :, :-2])
        gy[:, :, 1:-1] = 0.5 * (f2[:, :, 2:] - f2[:, :, :-2])
        gx[:, :, :, 0] = 0.5 * (f1[:, :, :, 1] - f1[:, :, :, 0])
        gx[:, :, :, -1] = 0.5 * (f1[:, :, :, -1] - f1[:, :, :, -2])
        gy[:, :, 0] = 0.5 * (f1[:, :, 1] - f1[:, :, 0])
        gy[:, :, -1] = 0.5 * (f1[:, :, -1] - f1[:, :, -2])
        rho_epsilon = 1e-12
    g2 = gx**2 + gy**2 + 1e-12

    def grad(u):
        a = np.zeros_like(u)
        b = np.zeros_like(u)
        a[:, :, :, :-1] = u[:, :, :, 1:] - u[:, :, :, :-1]
        b[:, :, :-1] = u[:, :, 1:] - u[:, :, :-1]
        return a, b

    def div(px, py):
        d = np.zeros_like(px)
        d[:, :, :, 0] += px[:, :, :, 0]
        d[:, :, :, 1:-1] += px[:, :, :, 1:-1] - px[:, :, :, :-2]
        d[:, :, :, -1] += -px[:, :, :, -2]
        d[:, :, 0] += py[:, :, 0]
        d[:, :, 1:-1] += py[:, :, 1:-1] - py[:, :, :-2]
        d[:, :, -1] += -py[:, :, -2]
        return d

    rho_c = f2 - f1
    lt, taut = lam * theta, tau / theta
    ux, uy = np.zeros_like(f2), np.zeros_like(f2)
    p11, p12, p21, p22 = (np.zeros_like(f2) for _ in range(4))
    for _ in range(n_iter):
        rho = rho_c + gx * ux + gy * uy + rho_epsilon
        step = np.zeros_like(rho)
        lower = rho < -lt * g2
        upper = rho > lt * g2
        middle = ~lower & ~upper & (g2 > 1e-12)
        step[lower] = lt
        step[upper] = -lt
        step[middle] = -rho[middle] / g2[middle]
        vx, vy = ux + step * gx, uy + step * gy
        ux = vx + theta * div(p11, p12)
        uy = vy + theta * div(p21, p22)
        a, b = grad(ux)
        n = 1 + taut * np.sqrt(a**2 + b**2 + 1e-12)
        p11, p12 = (p11 + taut * a) / n, (p12 + taut * b) / n
        c, d = grad(uy)
        n = 1 + taut * np.sqrt(c**2 + d**2 + 1e-12)
        p21, p22 = (p21 + taut * c) / n, (p22 + taut * d) / n
    return np.concatenate([ux, uy], axis=-1)


def smooth_texture(rng, height, width, passes=4):
    """A random texture in [0, 255], smoothed by repeated 3x3 box blurs (wrap-around)."""
    t = rng.random((height, width))
    for _ in range(passes):
        t = sum(np.roll(np.roll(t, i, 0), j, 1) for i in (-1, 0, 1) for j in (-1, 0, 1)) / 9.0
    return 255.0 * (t - t.min()) / (t.max() - t.min())


@pytest.mark.parametrize("image_gradient", ["sobel", "central", "reference"])
@pytest.mark.parametrize("normalize", ["sample", "sample_channel", "none"])
@pytest.mark.parametrize("n_iter", [1, 3, 10])
def test_matches_numpy_spec(image_gradient, normalize, n_iter):
    rng = np.random.default_rng(n_iter)
    # Channels of different ranges, so that "sample" and "sample_channel" rescale differently.
    x = (rng.normal(size=(2, 3, 9, 11, 3)) * [1.0, 3.0, 0.2] + [0.0, 5.0, -1.0]).astype("float32")
    if normalize == "none":
        x = 40.0 * x
    layer = RepresentationFlow(n_iter=n_iter, image_gradient=image_gradient, normalize=normalize)
    got = keras.ops.convert_to_numpy(layer(x))
    want = reference_flow(x, n_iter, image_gradient=image_gradient, normalize=normalize)
    assert got.shape == (2, 2, 9, 11, 6)
    relative = np.abs(got - want).max() / np.abs(want).max()
    assert np.abs(want).max() > 1e-2
    assert relative <= 1e-4, relative


@pytest.mark.parametrize("axis", ["x", "y"])
def test_recovers_one_pixel_translation(axis):
    texture = smooth_texture(np.random.default_rng(0), 40, 40)
    shifted = np.roll(texture, 1, axis=1 if axis == "x" else 0)  # F2(x) = F1(x - d)
    x = np.stack([texture, shifted])[None, :, :, :, None].astype("float32")
    flow = keras.ops.convert_to_numpy(RepresentationFlow(n_iter=100, normalize="none")(x))[0, 0]
    interior = flow[8:-8, 8:-8]
    mean_x, mean_y = interior[..., 0].mean(), interior[..., 1].mean()
    expected = (1.0, 0.0) if axis == "x" else (0.0, 1.0)
    assert abs(mean_x - expected[0]) <= 0.1, (mean_x, mean_y)
    assert abs(mean_y - expected[1]) <= 0.1, (mean_x, mean_y)


@pytest.mark.parametrize("n_iter", [20, 50])
def test_central_at_one_scale_and_one_warp_is_opencvs_tvl1(n_iter):
    """``central`` with ``normalize="none"`` computes OpenCV's DualTVL1 at one scale and one warp; the
    reference rule (F1's border differences) does not."""
    import cv2

    frame = smooth_texture(np.random.default_rng(3), 48, 64, passes=2).astype(np.float32)
    moved = cv2.warpAffine(frame, np.float32([[1, 0, 0.8], [0, 1, -0.5]]), (64, 48), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT)
    pair = [np.round(f).astype(np.uint8) for f in (frame, moved)]  # grey camera frames
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create(
        tau=0.25, lambda_=0.15, theta=0.3, nscales=1, warps=1, epsilon=0, innnerIterations=n_iter,
        outerIterations=1, gamma=0, medianFiltering=1)
    want = tvl1.calc(pair[0], pair[1], None)  # (H, W, 2): (u_x, u_y)
    clip = np.stack(pair).astype("float32")[None, :, :, :, None]

    def flow(image_gradient):
        layer = RepresentationFlow(n_iter=n_iter, image_gradient=image_gradient, normalize="none")
        return keras.ops.convert_to_numpy(layer(clip))[0, 0]

    assert np.abs(want).mean() > 0.5  # the pair really moves
    assert np.abs(flow("central") - want).max() <= 1e-4
    assert np.abs(flow("reference") - want).max() > 0.1


@pytest.mark.parametrize(
    "x",
    [
        np.full((2, 3, 8, 8, 2), 7.0, "float32"),
        np.zeros((2, 3, 8, 8, 2), "float32"),
        np.random.default_rng(1).random((1, 2, 8, 8, 2)).astype("float32"),
    ],
    ids=["constant", "zeros", "two-frames"],
)
def test_finite_on_flat_zero_and_two_frame_inputs(x):
    layer = RepresentationFlow(n_iter=10)
    with tf.GradientTape() as tape:
        tensor = tf.convert_to_tensor(x)
        tape.watch(tensor)
        y = layer(tensor)
        loss = tf.reduce_sum(y**2)
    grads = tape.gradient(loss, [tensor, *layer.trainable_weights])
    assert y.shape == (x.shape[0], x.shape[1] - 1, 8, 8, 4)
    assert np.isfinite(y.numpy()).all()
    assert all(np.isfinite(g.numpy()).all() for g in grads)
    if x.std() == 0:
        np.testing.assert_array_equal(y.numpy(), 0.0)


def _gradient_norms(layer, x, loss_fn):
    with tf.GradientTape() as tape:
        loss = loss_fn(layer(x))
    grads = tape.gradient(loss, layer.trainable_weights)
    return {w.path: float(np.abs(g.numpy()).sum()) for w, g in zip(layer.trainable_weights, grads)}


def test_gradients_reach_every_parameter():
    rng = np.random.default_rng(2)
    texture = smooth_texture(rng, 16, 16)
    x = np.stack([texture, np.roll(texture, 1, 1), np.roll(texture, 2, 1)])
    x = np.stack([x, 0.5 * x + 10.0 * rng.random(x.shape)], axis=-1)[None].astype("float32")
    layer = RepresentationFlow(n_iter=5, learnable=[1, 1, 1, 1, 1])
    target = rng.normal(size=(1, 2, 16, 16, 4)).astype("float32")
    norms = _gradient_norms(layer, x, lambda y: tf.reduce_mean((y - target) ** 2))
    names = sorted(name.split("/")[-1] for name in norms)
    assert names == sorted(ALL_FLOW_WEIGHTS)
    for name, norm in norms.items():
        assert np.isfinite(norm) and norm > 0, (name, norm)


def test_block_shapes_identity_start_and_gradients_after_a_step():
    rng = np.random.default_rng(3)
    x = rng.random((2, 5, 8, 8, 6)).astype("float32")
    block = RepresentationFlowBlock(num_flow_layers=2, bottleneck=4, n_iter=4)
    y = keras.ops.convert_to_numpy(block(x))
    assert y.shape == (2, 3, 8, 8, 6)
    # Batch norm starts at gamma = 0: the block is ReLU of the 3-frame running mean of its input.
    residual = (x[:, :-2] + x[:, 1:-1] + x[:, 2:]) / 3.0
    np.testing.assert_allclose(y, np.maximum(residual, 0.0), atol=1e-6)

    inputs = keras.Input((5, 8, 8, 6))
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling3D()(block(inputs))))
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    labels = np.array([0, 2])
    model.train_on_batch(x, labels)
    with tf.GradientTape() as tape:
        loss = keras.losses.sparse_categorical_crossentropy(labels, model(x, training=True), from_logits=True)
    grads = tape.gradient(loss, model.trainable_weights)
    norms = {w.path: float(np.abs(g.numpy()).sum()) for w, g in zip(model.trainable_weights, grads)}
    assert sum("/flow_" in name for name in norms) == 2 * 7  # the image-gradient kernels do not train by default
    for name, norm in norms.items():
        assert np.isfinite(norm) and norm > 0, (name, norm)


@pytest.mark.large
@pytest.mark.parametrize("layer_cls,kwargs,output_shape,mixed_dtype", [
    (RepresentationFlow, dict(n_iter=3, theta=0.2, tau=0.3, lambda_=0.1, image_gradient="central", normalize="none",
                              learnable=[1, 0, 1, 0, 1]), (1, 4, 6, 6, 6), "float32"),
    (RepresentationFlow, dict(n_iter=2, normalize="sample_channel", learnable=[0, 0, 0, 1, 0]),
     (1, 4, 6, 6, 6), "float32"),
    (RepresentationFlowBlock, dict(num_flow_layers=3, bottleneck=2, n_iter=2, flow_options={
        "image_gradient": "central", "normalize": "sample_channel", "learnable": [1, 0, 0, 1, 1]}),
     (1, 2, 6, 6, 3), "float16"),
])
def test_layer_contract(layer_cls, kwargs, output_shape, mixed_dtype):
    # Config round trip, shapes, a .keras file reloaded in a fresh process, mixed precision, a training step.
    x = np.random.default_rng(4).random((1, 5, 6, 6, 3)).astype("float32")
    layer = run_layer_test(layer_cls, kwargs, x, output_shape, atol=1e-6, mixed_precision_dtype=mixed_dtype)
    flows = layer.flows if layer_cls is RepresentationFlowBlock else [layer]
    options = kwargs.get("flow_options", kwargs)
    for flow in flows:  # the options reach every flow layer
        assert flow.normalize == options["normalize"] and flow.image_gradient == options.get("image_gradient", "sobel")
        assert sorted(_names(flow.flow_parameters)) == sorted(ALL_FLOW_WEIGHTS)
        assert sorted(_names(flow.trainable_weights)) == _weights_of_flags(options["learnable"])
    if layer_cls is RepresentationFlowBlock:
        assert [flow.n_iter for flow in flows] == [2] * 3
        assert layer.flow_parameters == [w for flow in flows for w in flow.flow_parameters]
        assert (layer.norm.epsilon, layer.norm.momentum) == (1e-5, 0.9)


# The weights each `learnable` flag switches, in the flags' order [image_gradient, grad_div, theta, lambda, tau].
FLAG_WEIGHTS = [["image_grad_x", "image_grad_y"], ["flow_grad_x", "flow_grad_y", "div_x", "div_y"],
                ["theta"], ["lambda"], ["tau"]]


def _names(weights):
    return [w.path.split("/")[-1] for w in weights]


def _weights_of_flags(flags):
    return sorted(name for names, on in zip(FLAG_WEIGHTS, flags, strict=True) if on for name in names)


@pytest.mark.parametrize("flags", [[0, 1, 1, 1, 1], [1, 0, 0, 0, 0], [False, False, True, False, True]])
def test_learnable_flags_choose_the_trainable_weights(flags):
    layer = RepresentationFlow(n_iter=1, learnable=flags)
    layer.build((None, 2, 5, 5, 2))
    assert sorted(_names(layer.trainable_weights)) == _weights_of_flags(flags)
    assert sorted(_names(layer.non_trainable_weights)) == _weights_of_flags([not f for f in flags])
    assert _names(layer.flow_parameters) == ALL_FLOW_WEIGHTS  # trainable or not
    assert layer.get_config()["learnable"] == [int(f) for f in flags]


def test_default_learnable_is_the_authors_best_setting():
    layer = RepresentationFlow()
    assert layer.get_config()["learnable"] == [0, 1, 1, 1, 1]
    assert RepresentationFlow(learnable=(np.bool_(True),) * 5).learnable == (True,) * 5


@pytest.mark.parametrize("bad", [[1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [1, 1, 2, 1, 1], [1, 0.5, 1, 1, 1],
                                 ["1"] * 5, "11111", 1])
def test_learnable_must_be_five_flags(bad):
    with pytest.raises(ValueError, match="learnable"):
        RepresentationFlow(learnable=bad)


def test_normalize_modes_and_legacy_booleans():
    x = np.random.default_rng(8).normal(size=(1, 3, 6, 6, 2)).astype("float32") * [1.0, 9.0]
    assert RepresentationFlow().get_config()["normalize"] == "sample"
    for legacy, mode in ((True, "sample_channel"), (False, "none")):
        layer = RepresentationFlow(n_iter=2, normalize=legacy)
        assert layer.normalize == layer.get_config()["normalize"] == mode
        np.testing.assert_array_equal(layer(x), RepresentationFlow(n_iter=2, normalize=mode)(x))
    for bad in ("batch", "Sample", None, 1, 0):
        with pytest.raises(ValueError, match="'sample', 'sample_channel', 'none'"):
            RepresentationFlow(normalize=bad)


def test_sample_normalisation_ignores_the_batch_and_differs_from_per_channel():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(2, 3, 8, 8, 2)).astype("float32") * [1.0, 6.0]  # channel ranges differ
    other = x.copy()
    other[1] = 100.0 * rng.normal(size=x.shape[1:])  # a different second clip
    sample = RepresentationFlow(n_iter=4, normalize="sample")
    alone = keras.ops.convert_to_numpy(sample(x[:1]))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(sample(x))[:1], alone, atol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(sample(other))[:1], alone, atol=1e-5)
    per_channel = keras.ops.convert_to_numpy(RepresentationFlow(n_iter=4, normalize="sample_channel")(x[:1]))
    assert np.abs(per_channel - alone).max() > 0.1 * np.abs(alone).max()
    # With every channel spanning the same range the two modes agree.
    same = (x - x.min(axis=(1, 2, 3), keepdims=True)) / np.ptp(x, axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(RepresentationFlow(n_iter=4, normalize="sample")(same)),
        keras.ops.convert_to_numpy(RepresentationFlow(n_iter=4, normalize="sample_channel")(same)),
        atol=1e-4,
    )


def test_configs_saved_before_learnable_and_the_modes_still_load():
    old = dict(normalize=True, trainable_kernels=False)  # trainable_kernels covered the six kernels
    layer = RepresentationFlow.from_config(dict(old, n_iter=2))
    assert (layer.n_iter, layer.normalize, layer.learnable) == (2, "sample_channel", (False, False, True, True, True))
    assert (RepresentationFlow.from_config(dict(normalize=False, trainable_kernels=True)).get_config()["learnable"]
            == [1, 1, 1, 1, 1])
    block = RepresentationFlowBlock.from_config(dict(num_flow_layers=1, bottleneck=2, flow_options=old))
    assert block.get_config()["flow_options"] == {"normalize": True, "learnable": [0, 0, 1, 1, 1]}
    assert (block.flows[0].normalize, block.flows[0].learnable) == ("sample_channel", (False, False, True, True, True))
    with pytest.raises(ValueError):  # the constructor itself no longer takes it
        RepresentationFlow(trainable_kernels=True)


def test_positive_floor_keeps_theta_positive_after_a_huge_step():
    rng = np.random.default_rng(10)
    texture = smooth_texture(rng, 12, 12)
    x = np.stack([texture, np.roll(texture, 1, 1), np.roll(texture, 2, 0)])[None, ..., None].astype("float32")
    layer = RepresentationFlow(n_iter=5, learnable=[0, 0, 1, 1, 1])
    layer(x)
    for weight in (layer.theta_weight, layer.tau_weight, layer.lambda_weight):
        assert isinstance(weight.constraint, PositiveFloor) and weight.constraint.minimum == 1e-4
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(layer(x))
    theta_grad = float(tape.gradient(total, layer.theta_weight))
    assert theta_grad != 0.0
    sign = 1.0 if theta_grad > 0 else -1.0  # descend so that theta goes down
    with tf.GradientTape() as tape:
        loss = sign * tf.reduce_sum(layer(x))
    grads = tape.gradient(loss, layer.trainable_weights)
    learning_rate = 1e6
    assert 0.3 - learning_rate * abs(theta_grad) < 0  # without the floor theta would be negative
    keras.optimizers.SGD(learning_rate).apply_gradients(zip(grads, layer.trainable_weights))
    assert float(layer.theta_weight.numpy()) == np.float32(1e-4)
    assert min(float(w.numpy()) for w in (layer.tau_weight, layer.lambda_weight)) >= np.float32(1e-4)
    assert np.isfinite(keras.ops.convert_to_numpy(layer(x))).all()


def test_positive_floor_clamps_and_serializes():
    floor = PositiveFloor(minimum=0.5)
    np.testing.assert_array_equal(floor(tf.constant([-3.0, 0.2, 0.5, 2.0])), [0.5, 0.5, 0.5, 2.0])
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(floor))
    assert type(revived) is PositiveFloor and revived.get_config() == {"minimum": 0.5}
    assert PositiveFloor().minimum == 1e-4


def test_symbolic_call_with_unknown_batch():
    inputs = keras.Input((4, 8, 8, 3), batch_size=None)
    out = RepresentationFlowBlock(num_flow_layers=1, bottleneck=2, n_iter=2)(RepresentationFlow(n_iter=2)(inputs))
    assert tuple(out.shape) == (None, 2, 8, 8, 6)
    model = keras.Model(inputs, out)
    for batch in (1, 3):
        assert model(np.zeros((batch, 4, 8, 8, 3), "float32")).shape == (batch, 2, 8, 8, 6)


@pytest.mark.large
def test_training_step_under_mixed_float16():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        inputs = keras.Input((4, 8, 8, 3))
        h = keras.layers.Conv3D(4, (1, 3, 3), padding="same")(inputs)
        flow_layer = RepresentationFlow(n_iter=5)
        flow = flow_layer(h)
        h = RepresentationFlowBlock(num_flow_layers=2, bottleneck=2, n_iter=3)(flow)
        logits = keras.layers.Dense(2, dtype="float32")(keras.layers.GlobalAveragePooling3D()(h))
        model = keras.Model(inputs, logits)
        assert flow_layer.compute_dtype == "float32" and flow.dtype == "float32"
        model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        x = np.random.default_rng(6).random((2, 4, 8, 8, 3)).astype("float32")
        before = [w.numpy().copy() for w in flow_layer.trainable_weights]
        loss = model.train_on_batch(x, np.array([0, 1]))
        assert np.isfinite(loss)
        after = [w.numpy() for w in flow_layer.trainable_weights]
        assert all(np.isfinite(a).all() for a in after)
        assert any(not np.array_equal(a, b) for a, b in zip(after, before))
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_float32_whatever_dtype_is_asked_for():
    for dtype in ("float16", "mixed_float16", "float64"):
        layer = RepresentationFlow(n_iter=2, dtype=dtype)
        out = layer(np.random.default_rng(7).random((1, 2, 5, 5, 1)).astype("float32"))
        assert layer.compute_dtype == layer.variable_dtype == keras.backend.standardize_dtype(out.dtype) == "float32"
