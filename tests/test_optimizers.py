"""TorchSGD / TorchAdam against PyTorch's update rules written out in NumPy."""

import numpy as np
import keras

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
    # Keras' Adam update with its epsilon placement, on the L2-augmented gradient, per group.
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
            alpha = group_lr[k] * np.sqrt(1 - 0.999**step) / (1 - 0.9**step)
            weights[k] = weights[k] - alpha * m[k] / (np.sqrt(v[k]) + eps)
    for want, have in zip(weights, got):
        np.testing.assert_allclose(have, want, rtol=1e-4, atol=1e-6)


def test_config_round_trip():
    sgd = TorchSGD.from_config(TorchSGD(l2=5e-4, learning_rate=0.1, momentum=0.9).get_config())
    assert (sgd.l2, float(sgd.momentum)) == (5e-4, 0.9)
    assert TorchAdam.from_config(TorchAdam(l2=4e-5).get_config()).l2 == 4e-5
