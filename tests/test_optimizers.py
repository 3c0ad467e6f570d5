"""TwoRateSGD: the slow group's updates are exactly ``slow_factor`` times plain SGD's."""

import numpy as np
import keras

from kerasflow.optimizers import TwoRateSGD


def _two_steps(optimizer_for):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    slow_layer = keras.layers.Dense(4, name="slow")
    model = keras.Model(inputs, keras.layers.Dense(2, name="fast")(slow_layer(inputs)))
    start = [w.copy() for w in model.get_weights()]
    model.compile(optimizer=optimizer_for(slow_layer), loss="mse")
    x = np.random.default_rng(1).normal(size=(8, 3)).astype("float32")
    y = np.random.default_rng(2).normal(size=(8, 2)).astype("float32")
    model.train_on_batch(x, y)
    return [after - before for after, before in zip(model.get_weights(), start)]


def test_slow_variables_move_by_the_factor_and_others_as_sgd():
    plain = _two_steps(lambda slow: keras.optimizers.SGD(0.1, momentum=0.9))
    scaled = _two_steps(lambda slow: TwoRateSGD(slow.trainable_weights, 0.01, learning_rate=0.1, momentum=0.9))
    # weights order: slow kernel, slow bias, fast kernel, fast bias
    np.testing.assert_allclose(scaled[0], 0.01 * plain[0], rtol=1e-3, atol=2e-7)
    np.testing.assert_allclose(scaled[1], 0.01 * plain[1], rtol=1e-3, atol=2e-7)
    np.testing.assert_allclose(scaled[2], plain[2], rtol=1e-6)
    assert np.abs(plain[0]).max() > 1e-3
    assert TwoRateSGD.from_config(TwoRateSGD(slow_factor=0.5).get_config()).slow_factor == 0.5
