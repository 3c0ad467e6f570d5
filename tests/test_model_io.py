"""Weights files that older kerasflow versions wrote load into today's models."""

import keras
import numpy as np
import pytest

from kerasflow.layers import ConvLSTM
from kerasflow.model_io import load_weights


def _model(convlstm):
    inputs = keras.Input((3, 4, 4, 2))
    _, _, cell = convlstm(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="classifier")(keras.layers.Flatten()(cell)))
    model.compile(optimizer="adam", loss="mse")
    return model


def _keras_convlstm(units=5):  # what kerasflow's RGB stream held before its own ConvLSTM
    return keras.layers.ConvLSTM2D(units, 3, padding="same", return_state=True, name="convlstm")


@pytest.mark.large
@pytest.mark.parametrize("suffix", [".weights.h5", ".keras"])
def test_a_file_written_with_keras_convlstm2d_loads_into_convlstm(tmp_path, suffix):
    old = _model(_keras_convlstm())
    clips = np.random.default_rng(0).random((2, 3, 4, 4, 2)).astype("float32")
    old.fit(clips, np.ones((2, 2)), verbose=0)  # moves the weights and fills the optimizer's state
    path = tmp_path / f"old{suffix}"
    old.save_weights(path) if suffix == ".weights.h5" else old.save(path)

    new = _model(ConvLSTM(5, name="convlstm"))
    new.optimizer.build(new.trainable_variables)
    with pytest.raises(ValueError, match="convlstm"):
        new.load_weights(path)
    load_weights(new, path)
    for loaded, saved in zip(new.get_weights(), old.get_weights(), strict=True):
        np.testing.assert_array_equal(loaded, saved)
    for loaded, saved in zip(new.optimizer.variables, old.optimizer.variables, strict=True):
        np.testing.assert_array_equal(loaded, saved)
    np.testing.assert_allclose(new(clips), old(clips), atol=1e-5)


def test_a_file_that_does_not_fit_for_another_reason_is_still_refused(tmp_path):
    path = tmp_path / "other.weights.h5"
    _model(_keras_convlstm(units=4)).save_weights(path)
    with pytest.raises(ValueError):
        load_weights(_model(ConvLSTM(5, name="convlstm")), path)
    _model(ConvLSTM(4, name="convlstm")).save_weights(path)
    with pytest.raises(ValueError):
        load_weights(_model(ConvLSTM(5, name="convlstm")), path)


def test_a_damaged_file_raises_what_keras_raises(tmp_path):
    path = tmp_path / "damaged.weights.h5"
    path.write_bytes(b"not an HDF5 file")
    model = _model(ConvLSTM(5, name="convlstm"))
    with pytest.raises(Exception) as keras_error:
        model.load_weights(path)
    with pytest.raises(type(keras_error.value)):
        load_weights(model, path)
