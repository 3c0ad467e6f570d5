"""Run-time setup from a recipe's ``runtime`` section: seeds, mixed precision, tf.distribute strategy,
and whether models run through XLA."""

import contextlib
import functools
import random

import keras
import numpy as np
import tensorflow as tf

from kerasflow.training.multi_worker import keep_sigterm_handler, patch_keras, tf_config


def configure(runtime):
    """Apply ``runtime.seed`` and ``runtime.mixed_precision``; return the distribution strategy.

    ``distribution``: ``none`` (the default strategy), ``mirrored`` (all local GPUs, else every
    logical CPU device; the global batch is split over the replicas) or ``multi_worker_mirrored`` (reads the
    cluster from ``TF_CONFIG``; see ``kerasflow.training.multi_worker``).
    """
    strategy = _strategy(runtime.distribution)
    keras.utils.set_random_seed(runtime.seed)
    keras.mixed_precision.set_global_policy(precision_policy(runtime.mixed_precision))
    return strategy


@contextlib.contextmanager
def globals_restored():
    """Put back, when the block returns or raises, every process-wide setting ``configure`` changes:
    Keras' dtype policy (e.g. ``mixed_bfloat16``), the global seeds and generator states of Python's
    ``random``, NumPy, TensorFlow and Keras (``keras.utils.set_random_seed``), and the patches of Keras a
    multi-worker run applies (``multi_worker.patch_keras``). The strategy itself is only ever entered as
    a scope, so none is left current. What a multi-worker strategy configures in TensorFlow's runtime
    (its collective ops) cannot be undone in a process."""
    from keras.src.backend.common import global_state
    from keras.src.backend.tensorflow import trainer
    from keras.src.random.seed_generator import GLOBAL_SEED_GENERATOR
    from keras.src.utils.rng_utils import GLOBAL_RANDOM_SEED
    from tensorflow.python.eager import context

    policy = keras.mixed_precision.global_policy()
    states = random.getstate(), np.random.get_state(), context.global_seed()
    keras_seeds = {name: global_state.get_global_attribute(name)
                   for name in (GLOBAL_RANDOM_SEED, GLOBAL_SEED_GENERATOR)}
    patched = {"_maybe_symbolic_build": (trainer.TensorFlowTrainer, trainer.TensorFlowTrainer.__dict__),
               "reduce_per_replica": (trainer, vars(trainer)), "_kerasflow_multi_worker": (trainer, vars(trainer))}
    originals = {name: namespace.get(name) for name, (_, namespace) in patched.items()}
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(policy)
        random.setstate(states[0])
        np.random.set_state(states[1])
        context.set_global_seed(states[2])
        for name, value in keras_seeds.items():
            global_state.set_global_attribute(name, value)
        for name, (owner, _) in patched.items():
            if originals[name] is None:
                with contextlib.suppress(AttributeError):
                    delattr(owner, name)
            else:
                setattr(owner, name, originals[name])


def precision_policy(mixed_precision):
    """The Keras dtype policy of ``runtime.mixed_precision``: false, true (float16), float16 or bfloat16."""
    if mixed_precision is False:
        return "float32"
    return "mixed_bfloat16" if mixed_precision == "bfloat16" else "mixed_float16"


def use_xla(jit_compile):
    """Whether ``runtime.jit_compile`` (true, false or ``"auto"``) compiles models (Keras' ``jit_compile``).

    ``auto`` depends on the Keras backend:

    - TensorFlow: XLA when TensorFlow sees a GPU or TPU, not on a CPU. XLA fuses the flow layer's
      elementwise iterations into few kernels, which is what an accelerator needs, but its CPU code for
      them is far slower than TensorFlow's own kernels (the benchmark's XLA section measures both; the
      flow loop alone ran 20x slower on this project's CPU). Keras' own ``"auto"`` would pick XLA on a
      CPU too.
    - JAX: always. ``jax.jit`` is how JAX runs a model as one program; without it every op is
      dispatched on its own, and the demo's flow stage trained 4x slower (about 0.63 s a step against
      0.156 s jitted, on this project's CPU).
    - torch: never, as Keras' ``"auto"``: ``jit_compile`` there is ``torch.compile``.
    """
    if jit_compile != "auto":
        return bool(jit_compile)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))
    return backend == "jax"


def forward_function(model, jit_compile):
    """``inputs -> model(inputs, training=False)``: the model itself, or one XLA-compiled function of it
    when ``use_xla(jit_compile)`` on TensorFlow (JAX and torch compile in ``kerasflow.backend.run_model``)."""
    if not use_xla(jit_compile) or keras.backend.backend() != "tensorflow":
        return model
    compiled = tf.function(functools.partial(model, training=False), jit_compile=True)
    return lambda inputs, training=False: compiled(inputs)


def _strategy(distribution):
    # Created before anything else touches TensorFlow's runtime: MultiWorkerMirroredStrategy must
    # configure the collective ops at start-up.
    if distribution == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = gpus or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if distribution == "multi_worker_mirrored":
        tf_config()  # a missing or malformed TF_CONFIG is a one-line error
        patch_keras()
        with keep_sigterm_handler():
            return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()

