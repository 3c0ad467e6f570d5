"""One contract test for every kerasflow layer, in the spirit of keras-hub's ``run_layer_test``.

``run_layer_test`` checks, for one layer configuration and one input:
(a) the config round trip: ``get_config`` -> ``from_config`` -> ``get_config`` gives the same dict,
    ``serialize_keras_object`` / ``deserialize_keras_object`` give back the same class and config, and
    the rebuilt layer with the original's weights gives the same output;
(b) shapes: the eager output, ``compute_output_shape`` and a symbolic call on ``keras.KerasTensor``
    (with the batch size known and unknown) agree with ``expected_output_shape``;
(c) saving: a functional model around the layer, its weights moved off their initial values, is saved
    as ``.keras``, reloaded and run in a fresh Python process, and gives the in-process output;
(d) mixed precision: under ``mixed_float16`` the layer builds, runs, keeps float32 variables and
    returns finite outputs of the dtype it promises (``mixed_precision_dtype``);
(e) training: where the layer has trainable weights, finite gradients reach each of them and one
    ``fit`` step on one batch has a finite loss and moves some weight.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

REPO = Path(__file__).resolve().parents[1]

# Loads the saved model in a new interpreter: nothing registered or cached in this one can help it.
RELOAD_CODE = """
import sys
import numpy as np
import keras
import kerasflow.layers

folder = sys.argv[1]
model = keras.saving.load_model(folder + "/model.keras")
data = np.load(folder + "/inputs.npz")
inputs = [data[f"arr_{i}"] for i in range(len(data.files))]
outputs = model(inputs if len(inputs) > 1 else inputs[0])
np.savez(folder + "/outputs.npz", *[keras.ops.convert_to_numpy(o) for o in keras.tree.flatten(outputs)])
"""


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_data,
    expected_output_shape,
    *,
    expected_output=None,
    atol=1e-6,
    run_mixed_precision_check=True,
    mixed_precision_dtype="float16",
    run_training_check=True,
    call_kwargs=None,
):
    """Runs checks (a)-(e) of this module on ``layer_cls(**init_kwargs)`` and returns the built layer.

    Args:
        layer_cls: a ``keras.layers.Layer`` subclass, or a factory that returns a layer (such as
            ``egornn_convlstm``; its arguments are then not looked up in the config by name).
        init_kwargs: dict. The constructor arguments.
        input_data: a NumPy array, or a list of them for a layer with several inputs.
        expected_output_shape: tuple, or a list of tuples for a layer with several outputs.
        expected_output: optional array (or list of arrays) the eager output must match.
        atol: absolute tolerance of the output comparisons (``expected_output``, the rebuilt layer,
            the model reloaded in a fresh process).
        run_mixed_precision_check: bool. Run check (d).
        mixed_precision_dtype: str. The dtype of every output under ``mixed_float16``.
        run_training_check: bool. Run check (e) when the layer has trainable weights.
        call_kwargs: optional dict of call arguments (e.g. ``return_attention=True``).
    """
    call_kwargs = dict(call_kwargs or {})
    inputs = _as_list(input_data)
    expected_shapes = _as_shapes(expected_output_shape)

    layer, outputs = _check_config_round_trip(layer_cls, init_kwargs, input_data, call_kwargs, atol)
    assert _shapes_of(outputs) == expected_shapes, "eager call"
    if expected_output is not None:
        for got, want in zip(outputs, _as_list(expected_output), strict=True):
            np.testing.assert_allclose(got, want, atol=atol)
    _check_symbolic_shapes(layer, inputs, call_kwargs, expected_shapes)

    model = _functional_model(layer_cls(**init_kwargs), inputs, call_kwargs)
    move_weights_off_their_start(model)
    _check_reload_in_fresh_process(model, inputs, atol)

    if run_mixed_precision_check:
        _check_mixed_precision(layer_cls, init_kwargs, input_data, call_kwargs, mixed_precision_dtype)
    if run_training_check and model.trainable_weights:
        _check_training_step(model, inputs)
    return layer


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _one_or_many(values):
    """What a layer or model is called with: the one tensor itself, or the list of several."""
    return values[0] if len(values) == 1 else list(values)


def _as_shapes(shape):
    """One shape ``(2, 3)`` or several ``[(2, 3), (2,)]`` -> a list of tuples."""
    if len(shape) and isinstance(shape[0], (list, tuple)):
        return [tuple(s) for s in shape]
    return [tuple(shape)]


def _shapes_of(outputs):
    return [tuple(o.shape) for o in outputs]


def _numpy_outputs(outputs):
    return [keras.ops.convert_to_numpy(o) for o in keras.tree.flatten(outputs)]


def _check_config_round_trip(layer_cls, init_kwargs, input_data, call_kwargs, atol):
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    if isinstance(layer_cls, type):
        for key, value in init_kwargs.items():
            assert config[key] == value, (key, config.get(key), value)
    clone = type(layer).from_config(config)
    assert clone.get_config() == config

    outputs = _numpy_outputs(layer(input_data, **call_kwargs))
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(revived) is type(layer) and revived.get_config() == layer.get_config()
    for other in (clone, revived):
        if not other.built:
            other(input_data, **call_kwargs)
        other.set_weights(layer.get_weights())
        for got, want in zip(_numpy_outputs(other(input_data, **call_kwargs)), outputs, strict=True):
            np.testing.assert_allclose(got, want, atol=atol)
    return layer, outputs


def _check_symbolic_shapes(layer, inputs, call_kwargs, expected_shapes):
    shapes = [tuple(x.shape) for x in inputs]
    if not call_kwargs:  # compute_output_shape cannot see call arguments
        computed = layer.compute_output_shape(_one_or_many(shapes))
        assert _as_shapes(computed) == expected_shapes, "compute_output_shape"
    for batch in ("known", None):
        symbolic = [
            keras.KerasTensor(s if batch else (None, *s[1:]), dtype=x.dtype) for s, x in zip(shapes, inputs)
        ]
        outputs = keras.tree.flatten(layer(_one_or_many(symbolic), **call_kwargs))
        want = expected_shapes if batch else [(None, *s[1:]) for s in expected_shapes]
        assert _shapes_of(outputs) == want, f"symbolic call, batch size {batch}"


def _functional_model(layer, inputs, call_kwargs):
    symbolic = _one_or_many([keras.Input(x.shape[1:], dtype=x.dtype) for x in inputs])
    return keras.Model(symbolic, layer(symbolic, **call_kwargs))


def move_weights_off_their_start(model):
    """Shifts every weight up by 2.5-5 % of its largest value (or of 1), so a reload that reinitialises
    a weight instead of restoring it shows. Upward keeps variances positive and moves a zero-initialised
    batch-norm scale off 0."""
    rng = np.random.default_rng(0)
    for weight in model.weights:
        value = keras.ops.convert_to_numpy(weight)
        scale = float(np.abs(value).max()) or 1.0
        weight.assign(value + 0.05 * scale * rng.uniform(0.5, 1.0, value.shape).astype(value.dtype))


def _check_reload_in_fresh_process(model, inputs, atol):
    want = _numpy_outputs(model(_one_or_many(inputs)))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as folder:
        model.save(os.path.join(folder, "model.keras"))
        np.savez(os.path.join(folder, "inputs.npz"), *inputs)
        done = subprocess.run(
            [sys.executable, "-c", RELOAD_CODE, folder], env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-3000:]
        with np.load(os.path.join(folder, "outputs.npz")) as saved:
            got = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=atol)


def _check_mixed_precision(layer_cls, init_kwargs, input_data, call_kwargs, dtype):
    policy = keras.mixed_precision.global_policy()
    try:
        keras.mixed_precision.set_global_policy("mixed_float16")
        layer = layer_cls(**init_kwargs)
        outputs = keras.tree.flatten(layer(input_data, **call_kwargs))
        for weight in layer.weights:
            assert weight.dtype == "float32", (weight.path, weight.dtype)
        for output in outputs:
            assert keras.backend.standardize_dtype(output.dtype) == dtype, (output.dtype, dtype)
            assert np.isfinite(keras.ops.convert_to_numpy(output)).all()
    finally:
        keras.mixed_precision.set_global_policy(policy)


def _check_training_step(model, inputs):
    rng = np.random.default_rng(1)
    feed = _one_or_many(inputs)
    targets = [rng.normal(size=o.shape).astype("float32") for o in _numpy_outputs(model(feed))]

    with tf.GradientTape() as tape:
        outputs = keras.tree.flatten(model(feed, training=True))
        loss = sum(tf.reduce_mean((tf.cast(o, "float32") - t) ** 2) for o, t in zip(outputs, targets))
    grads = tape.gradient(loss, model.trainable_weights)
    for weight, grad in zip(model.trainable_weights, grads):
        assert grad is not None, f"no gradient reaches {weight.path}"
        assert np.isfinite(grad.numpy()).all(), weight.path
    assert any(np.abs(g.numpy()).sum() > 0 for g in grads), "every gradient is zero"

    before = [w.numpy().copy() for w in model.trainable_weights]
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss=["mse"] * len(targets))
    history = model.fit(feed, _one_or_many(targets), batch_size=len(inputs[0]), verbose=0)
    assert np.isfinite(history.history["loss"]).all(), history.history
    after = [w.numpy() for w in model.trainable_weights]
    assert all(np.isfinite(a).all() for a in after)
    assert any(not np.array_equal(a, b) for a, b in zip(after, before)), "one fit step moved no weight"
