"""Run-time setup from a recipe's ``runtime`` section: seeds, mixed precision, tf.distribute strategy."""

import json
import os

import keras
import tensorflow as tf

from kerasflow.errors import UserError


def configure(runtime):
    """Apply ``runtime.seed`` and ``runtime.mixed_precision``; return the distribution strategy.

    ``distribution``: ``none`` (the default strategy), ``mirrored`` (all local GPUs, else every
    logical CPU device; the global batch is split over the replicas) or ``multi_worker_mirrored`` (experimental under
    Keras 3; reads the cluster from ``TF_CONFIG``).
    """
    strategy = _strategy(runtime.distribution)
    keras.utils.set_random_seed(runtime.seed)
    keras.mixed_precision.set_global_policy("mixed_float16" if runtime.mixed_precision else "float32")
    return strategy


def _strategy(distribution):
    # Created before anything else touches TensorFlow's runtime: MultiWorkerMirroredStrategy must
    # configure the collective ops at start-up.
    if distribution == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = gpus or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if distribution == "multi_worker_mirrored":
        if "TF_CONFIG" not in os.environ:
            raise UserError(
                "runtime.distribution = multi_worker_mirrored needs the TF_CONFIG environment variable "
                "(cluster and task of this worker); set it or use mirrored"
            )
        try:
            json.loads(os.environ["TF_CONFIG"])
        except ValueError:
            raise UserError("TF_CONFIG is not valid JSON; see the README's scale-out section") from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy):
    """Whether this process writes the run folder (always, except the non-chief multi-worker workers)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "chief" or (not has_chief and task_type == "worker" and task_id == 0)
