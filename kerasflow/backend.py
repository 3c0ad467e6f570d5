"""What kerasflow does differently on Keras' backends (``KERAS_BACKEND``: tensorflow, jax, torch).

Models, layers, optimizers and the saved files are the same on every backend; the data pipeline is
tf.data on each of them. Only TensorFlow runs ``tf.distribute``, and inference runs compiled on JAX.
"""

import os
import subprocess
import sys

import keras
import numpy as np

from kerasflow.errors import UserError

# What each backend offers instead of tf.distribute (kerasflow drives neither).
_DATA_PARALLEL = {
    "jax": "Keras' data parallelism on JAX is keras.distribution.DataParallel, which kerasflow does not drive",
}


def name():
    """The Keras backend of this process: ``tensorflow``, ``jax`` or ``torch``."""
    return keras.backend.backend()


def check_runtime(runtime):
    """Refuse in one line what the recipe's ``runtime`` asks that this backend cannot run."""
    backend = name()
    if runtime.distribution != "none" and backend != "tensorflow":
        raise UserError(
            f"runtime.distribution = {runtime.distribution} uses tf.distribute, which runs on the tensorflow "
            f"backend only (this is KERAS_BACKEND={backend}; "
            f"{_DATA_PARALLEL.get(backend, 'Keras has no data parallelism for it that kerasflow drives')}); set "
            "runtime.distribution: none or train with KERAS_BACKEND=tensorflow"
        )


def run_model(model, inputs):
    """``model``'s inference-mode output for one batch, as NumPy (a dict output stays a dict).

    TensorFlow: a plain call, not ``predict_on_batch``, so one row per example comes back under any
    tf.distribute strategy and no new function is traced on the first call. JAX and torch:
    ``predict_on_batch``, compiled once per input shape on JAX (its op-by-op calls take minutes for
    the demo model) and without autograd's bookkeeping on torch. ``inputs``: an array or a dict of them.
    ``model`` may also be a ``kerasflow.export.predictors.Predictor``, which is called.
    """
    inputs = keras.tree.map_structure(np.asarray, inputs)
    if name() != "tensorflow" and isinstance(model, keras.Model):
        return model.predict_on_batch(inputs)
    return keras.tree.map_structure(keras.ops.convert_to_numpy, model(inputs, training=False))


def predict_logits(model, inputs):
    """The float32 logits ``(B, K)`` of ``model`` for ``inputs`` (``run_model``); a dict output gives its
    ``logits``."""
    output = run_model(model, inputs)
    return np.asarray(output["logits"] if isinstance(output, dict) else output, np.float32)


def run_under_tensorflow(module, argv):
    """Run ``python -m module ARGV`` in a subprocess with ``KERAS_BACKEND=tensorflow`` (what writes
    SavedModel and TFLite files), its output going where this process' goes; its exit status."""
    environment = dict(os.environ, KERAS_BACKEND="tensorflow")
    return subprocess.run([sys.executable, "-m", module, *argv], env=environment).returncode
