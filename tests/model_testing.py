"""Contract tests for kerasflow's backbones and models, in the spirit of keras-hub's
``run_vision_backbone_test`` and ``run_task_test``, and the one softmax the tests compare against.

``run_backbone_test`` and ``run_model_test`` check, for one built backbone or model and one input:
(a) the config round trip: ``from_config(get_config())`` gives the same config, and
    ``serialize_keras_object`` / ``deserialize_keras_object`` give back the same class and config;
(b) a forward pass: the eager output has ``expected_output_shape`` (a dict of shapes for a backbone's
    named outputs); for a model, ``predict`` gives the eager output too;
(c) saving, with every weight first moved off its initial value so that a reload which reinitialises a
    weight instead of restoring it shows: the ``.keras`` file reloads as the same class and config and
    gives the same outputs, and a ``.weights.h5`` file loaded into a fresh ``from_config`` copy gives
    the same outputs.
"""

import json
import os
import tempfile

import keras
import numpy as np
from layer_testing import move_weights_off_their_start


def softmax(logits, axis=-1):
    """NumPy's float64 softmax of ``logits`` along ``axis`` (an independent reference for the model's)."""
    logits = np.asarray(logits, np.float64)
    exponentials = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return exponentials / exponentials.sum(axis=axis, keepdims=True)


def run_backbone_test(backbone, input_data, expected_output_shape, *, atol=1e-5):
    """Runs checks (a)-(c) of this module on the built ``backbone`` (a ``keras.Model`` with a config,
    such as ``ResNetBackbone``) and returns its reloaded copy.

    Args:
        backbone: the backbone under test; its weights are moved (see (c)).
        input_data: a NumPy array of images (or clips) the backbone takes.
        expected_output_shape: a tuple, or a dict ``{output name: shape}`` for a backbone with named outputs.
        atol: absolute tolerance of the output comparisons after reloading.
    """
    _check_serialization(backbone)
    outputs = _outputs(backbone(input_data))
    assert _shapes(outputs) == _shapes_wanted(expected_output_shape), "eager call"
    return _check_saving(backbone, input_data, atol)


def run_model_test(model, input_data, expected_output_shape, *, atol=1e-5):
    """Runs checks (a)-(c) of this module on the functional ``model`` (a stream, a single-stream or
    two-stream model) and returns its reloaded copy.

    Args:
        model: the model under test; its weights are moved (see (c)).
        input_data: an array, or a dict ``{input name: array}``, the model is called with.
        expected_output_shape: the shape of the model's output (e.g. ``(batch, classes)``).
        atol: absolute tolerance of the output comparisons (``predict`` and after reloading).
    """
    _check_serialization(model)
    outputs = _outputs(model(input_data))
    assert _shapes(outputs) == _shapes_wanted(expected_output_shape), "eager call"
    batch = len(next(iter(keras.tree.flatten(input_data))))
    predicted = _outputs(model.predict(input_data, batch_size=batch, verbose=0))
    _assert_all_close(predicted, outputs, atol, "predict")
    return _check_saving(model, input_data, atol)


def _check_serialization(instance):
    config = _as_json(instance.get_config())
    assert _as_json(type(instance).from_config(_as_json(config)).get_config()) == config, "from_config(get_config())"
    revived = keras.saving.deserialize_keras_object(_as_json(keras.saving.serialize_keras_object(instance)))
    assert type(revived) is type(instance) and _as_json(revived.get_config()) == config, "serialize / deserialize"


def _check_saving(model, input_data, atol):
    move_weights_off_their_start(model)
    want = _outputs(model(input_data))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        assert type(loaded) is type(model), ".keras reload"
        assert _as_json(loaded.get_config()) == _as_json(model.get_config()), ".keras reload"
        _assert_all_close(_outputs(loaded(input_data)), want, atol, ".keras reload")

        weights = os.path.join(folder, "model.weights.h5")
        model.save_weights(weights)
        fresh = type(model).from_config(_as_json(model.get_config()))
        fresh.load_weights(weights)
        _assert_all_close(_outputs(fresh(input_data)), want, atol, ".weights.h5 reload")
    return loaded


def _as_json(config):
    """A new copy of ``config`` as the ``.keras`` file stores it (tuples become lists). A new one each
    time: a functional model's ``from_config`` takes entries out of the dict it is given."""
    return json.loads(json.dumps(config))


def _outputs(outputs):
    """``{name: NumPy array}`` of a dict output, else ``{index: array}`` of the flattened outputs."""
    if isinstance(outputs, dict):
        return {key: keras.ops.convert_to_numpy(value) for key, value in outputs.items()}
    return {index: keras.ops.convert_to_numpy(value) for index, value in enumerate(keras.tree.flatten(outputs))}


def _shapes(outputs):
    return {key: tuple(value.shape) for key, value in outputs.items()}


def _shapes_wanted(expected):
    if isinstance(expected, dict):
        return {key: tuple(shape) for key, shape in expected.items()}
    return {0: tuple(expected)}


def _assert_all_close(got, want, atol, what):
    assert set(got) == set(want), what
    for key in want:
        np.testing.assert_allclose(got[key], want[key], atol=atol, err_msg=f"{what}: output {key}")
