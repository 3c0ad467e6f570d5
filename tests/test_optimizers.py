"""TorchSGD / TorchAdam against PyTorch's update rules written out in NumPy, and against trajectories
that torch.optim itself recorded (tools/record_torch_optimizer_steps.py)."""

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasflow.training.optimizers import TorchAdam, TorchSGD

STEPS = 4


def _train(optimizer_for, steps=STEPS):
    """A linear model y = x @ W + b with an MSE loss; returns the start weights and the weights after ``steps``."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    slow_layer = keras.layers.Dense(2, name="slow")
    model = keras.Model(inputs, keras.layers.Dense(2, name="fast")(slow_layer(inputs)))
    start = [w.copy() for w in model.get_weights()]
    model.compile(optimizer=optimizer_for(slow_layer), loss="mse")
    x = np.random.default_rng(1).normal(size=(8, 3)).astype("float32")
    y = np.random.default_rng(2).normal(size=(8, 2)).astype("float32")
    for _ in range(steps):
        model.train_on_batch(x, y)
    return start, model.get_weights(), x, y


def _numpy_gradients(weights, x, y):
    """Gradients of mean((x W1 + b1) W2 + b2 - y)^2 over all elements."""
    w1, b1, w2, b2 = weights
    hidden = x @ w1 + b1
    out = hidden @ w2 + b2
    d_out = 2.0 * (out - y) / out.size
    d_w2, d_b2 = hidden.T @ d_out, d_out.sum(0)
    d_hidden = d_out @ w2.T
    return [x.T @ d_hidden, d_hidden.sum(0), d_w2, d_b2]


def test_torch_sgd_matches_pytorch_momentum_l2_and_param_groups():
    lr, momentum, wd, slow = 0.1, 0.9, 0.05, 0.01
    start, got, x, y = _train(
        lambda layer: TorchSGD(l2=wd, groups=[(layer.trainable_weights, slow, 0.0)], learning_rate=lr,
                               momentum=momentum)
    )
    # torch.optim.SGD, two groups: g += wd_group * w; buf = momentum * buf + g; w -= group_lr * buf
    weights = [w.astype(np.float64) for w in start]
    buffers = [np.zeros_like(w) for w in weights]
    group_lr = [lr * slow, lr * slow, lr, lr]
    group_wd = [0.0, 0.0, wd, wd]
    for _ in range(STEPS):
        grads = _numpy_gradients(weights, x, y)
        for k in range(4):
            g = grads[k] + group_wd[k] * weights[k]
            buffers[k] = momentum * buffers[k] + g
            weights[k] = weights[k] - group_lr[k] * buffers[k]
    for want, have, before in zip(weights, got, start):
        np.testing.assert_allclose(have, want, rtol=1e-4, atol=1e-6)
        assert np.abs(have - before).max() > 1e-4


def test_torch_adam_matches_pytorch_l2_and_param_groups():
    lr, wd, eps, slow, slow_wd = 0.01, 0.1, 1e-4, 0.01, 1e-3
    start, got, x, y = _train(lambda layer: TorchAdam(l2=wd, groups=[(layer.trainable_weights, slow, slow_wd)],
                                                      learning_rate=lr, epsilon=eps))
    # torch.optim.Adam on the L2-augmented gradient, per group: eps after the bias correction of v.
    weights = [w.astype(np.float64) for w in start]
    m = [np.zeros_like(w) for w in weights]
    v = [np.zeros_like(w) for w in weights]
    group_lr = [lr * slow, lr * slow, lr, lr]
    group_wd = [slow_wd, slow_wd, wd, wd]
    for step in range(1, STEPS + 1):
        grads = _numpy_gradients(weights, x, y)
        for k in range(4):
            g = grads[k] + group_wd[k] * weights[k]
            m[k] = 0.9 * m[k] + 0.1 * g
            v[k] = 0.999 * v[k] + 0.001 * g * g
            denominator = np.sqrt(v[k] / (1 - 0.999**step)) + eps
            weights[k] = weights[k] - group_lr[k] / (1 - 0.9**step) * m[k] / denominator
    for want, have in zip(weights, got):
        np.testing.assert_allclose(have, want, rtol=1e-4, atol=1e-6)


def test_config_round_trip():
    sgd = TorchSGD.from_config(TorchSGD(l2=5e-4, learning_rate=0.1, momentum=0.9).get_config())
    assert (sgd.l2, float(sgd.momentum)) == (5e-4, 0.9)
    assert TorchAdam.from_config(TorchAdam(l2=4e-5).get_config()).l2 == 4e-5


# Written by tools/record_torch_optimizer_steps.py with torch.optim.SGD / Adam (PyTorch 2.13).
TORCH_STEPS = np.load(Path(__file__).parent / "fixtures" / "torch_optimizer_steps.npz")
SETTINGS = {"sgd": (TorchSGD, {"learning_rate": 0.05, "momentum": 0.9}),
            "adam": (TorchAdam, {"learning_rate": 0.01, "epsilon": 1e-4})}


class _TwoGroups(keras.layers.Layer):
    """Twelve weights in two variables of 6: the fixture's two parameter groups."""

    def build(self, input_shape):
        start = TORCH_STEPS["start"]
        self.main = self.add_weight(shape=(6,), initializer=keras.initializers.Constant(start[:6]), name="main")
        self.slow = self.add_weight(shape=(6,), initializer=keras.initializers.Constant(start[6:]), name="slow")

    def call(self, x):
        return x + self.main[0] + self.slow[0]


def _model(name):
    """A compiled model holding the fixture's weights, its optimizer with the fixture's two groups."""
    layer = _TwoGroups()
    inputs = keras.Input((1,))
    model = keras.Model(inputs, layer(inputs))
    cls, settings = SETTINGS[name]
    model.compile(optimizer=cls(l2=4e-5, groups=[([layer.slow], 0.01, 0.0)], **settings), loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model, layer


def _rate(name, step):
    """The fixture's MultiStepLR: x gamma at each milestone step reached."""
    drops = int(np.sum(TORCH_STEPS["milestones"] <= step))
    return SETTINGS[name][1]["learning_rate"] * float(TORCH_STEPS["gamma"]) ** drops


def _step(model, layer, name, step, strategy=None):
    """One step with the fixture's gradient ``a * w + d_t``, the rate set as Keras' LearningRateScheduler does."""
    weights = np.concatenate([keras.ops.convert_to_numpy(layer.main), keras.ops.convert_to_numpy(layer.slow)])
    grads = TORCH_STEPS["curvature"] * weights + TORCH_STEPS["pushes"][step]
    model.optimizer.learning_rate = _rate(name, step)
    pairs = [(keras.ops.convert_to_tensor(grads[:6]), layer.main),
             (keras.ops.convert_to_tensor(grads[6:]), layer.slow)]
    if strategy is None:
        model.optimizer.apply(*zip(*pairs))
    else:
        strategy.run(lambda: model.optimizer.apply(*zip(*pairs)))
    return np.concatenate([keras.ops.convert_to_numpy(layer.main), keras.ops.convert_to_numpy(layer.slow)])


def _assert_on_torch_path(name, got, step):
    want = TORCH_STEPS[name][step]
    relative = np.linalg.norm(got - want) / np.linalg.norm(want)
    assert relative <= 1e-5, (name, step, relative)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_sixty_steps_with_rate_drops_follow_torch_optim(name):
    """Every step of 60, across the x0.1 drops at steps 20 and 40, in both groups (1x with L2, 0.01x)."""
    model, layer = _model(name)
    for step in range(len(TORCH_STEPS["pushes"])):
        _assert_on_torch_path(name, _step(model, layer, name, step), step)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_a_resumed_optimizer_continues_the_torch_path(name, tmp_path):
    """Checkpoint after 30 steps (weights and optimizer state), reload into a fresh model, go on to 60."""
    model, layer = _model(name)
    for step in range(30):
        _step(model, layer, name, step)
    model.save_weights(tmp_path / "checkpoint.weights.h5")
    model, layer = _model(name)
    model.load_weights(tmp_path / "checkpoint.weights.h5")
    for step in range(30, len(TORCH_STEPS["pushes"])):
        _assert_on_torch_path(name, _step(model, layer, name, step), step)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.distribute runs on TensorFlow only")
@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_under_a_tf_distribute_strategy_the_groups_follow_torch_optim(name):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model, layer = _model(name)
    for step in range(len(TORCH_STEPS["pushes"])):
        _assert_on_torch_path(name, _step(model, layer, name, step, strategy), step)


def test_keras_momentum_form_leaves_the_torch_path_after_a_rate_drop():
    """Why TorchSGD does not keep Keras' v = m v - lr g: after the drop at step 20 that form is off the path."""
    model, layer = _model("sgd")
    keras_sgd = keras.optimizers.SGD(learning_rate=0.05, momentum=0.9)
    keras_sgd.build([layer.main])
    weights = TORCH_STEPS["start"][:6].copy()
    layer.main.assign(weights)
    for step in range(21):
        keras_sgd.learning_rate = _rate("sgd", step)
        grads = TORCH_STEPS["curvature"][:6] * weights + TORCH_STEPS["pushes"][step][:6]
        keras_sgd.apply([keras.ops.convert_to_tensor(grads + 4e-5 * weights)], [layer.main])
        weights = keras.ops.convert_to_numpy(layer.main)
    want = TORCH_STEPS["sgd"][20][:6]
    assert np.linalg.norm(weights - want) / np.linalg.norm(want) > 1e-3


def test_nesterov_and_amsgrad_are_refused():
    with pytest.raises(ValueError, match="nesterov"):
        TorchSGD(momentum=0.9, nesterov=True)
    with pytest.raises(ValueError, match="amsgrad"):
        TorchAdam(amsgrad=True)
