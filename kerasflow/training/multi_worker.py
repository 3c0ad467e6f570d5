"""What ``runtime.distribution: multi_worker_mirrored`` needs beyond creating the strategy.

Every worker runs the same command. The chief (worker 0, or the ``chief`` task) owns the run folder;
every other worker trains in step with it from a private copy of that folder, made when it starts,
so ``runtime.output_dir`` must be a folder every worker can read (shared storage, or one machine).
All workers must run the same collective operations in the same order: creating variables
(broadcast from the chief), every training and validation step, and the few barriers below.

A lost worker cannot rejoin a running cluster (TensorFlow aborts its collectives for good), so the
survivors stop within seconds with one ``UserError`` line (``lost_worker_errors``); starting every
worker again with the same command resumes after the last epoch the chief recorded.

``patch_keras`` works around two Keras 3 bugs that stop ``model.fit`` under the strategy with more
than one worker (keras-team/keras#20329, tensorflow/tensorflow#72388).
"""

import contextlib
import json
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path

from kerasflow.atomic import process_alive
from kerasflow.errors import UserError

WORKER_FOLDER_PREFIX = "kerasflow-worker-"


def tf_config():
    """The parsed ``TF_CONFIG``; ``UserError`` when it is missing or not JSON."""
    if "TF_CONFIG" not in os.environ:
        raise UserError(
            "runtime.distribution = multi_worker_mirrored needs the TF_CONFIG environment variable "
            "(cluster and task of this worker); set it or use mirrored"
        )
    try:
        return json.loads(os.environ["TF_CONFIG"])
    except ValueError:
        raise UserError("TF_CONFIG is not valid JSON; see the README's scale-out section") from None


def is_chief_task(runtime):
    """Whether this process owns the run folder (read from ``TF_CONFIG``, before any strategy exists)."""
    if runtime.distribution != "multi_worker_mirrored":
        return True
    config = tf_config()
    task, cluster = config.get("task", {}), config.get("cluster", {})
    if "chief" in cluster:
        return task.get("type") == "chief"
    return task.get("type", "worker") == "worker" and int(task.get("index", 0)) == 0


@contextlib.contextmanager
def keep_sigterm_handler():
    """Put Python's SIGTERM handler back after the block: the strategy's coordination service installs
    TensorFlow's preemption notifier, which takes SIGTERM over and ignores it (a worker would keep
    training); with kerasflow's handler a worker stops with its one ``interrupted:`` line."""
    handler = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        if handler is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, handler)


def new_worker_folder():
    """A new temporary folder for this worker's copy of the run folder, after deleting the copies of
    workers that were killed (``kill -9`` leaves theirs behind)."""
    for stale in Path(tempfile.gettempdir()).glob(f"{WORKER_FOLDER_PREFIX}*-*"):
        pid = stale.name[len(WORKER_FOLDER_PREFIX):].split("-")[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{WORKER_FOLDER_PREFIX}{os.getpid()}-")


def is_multi_worker(strategy):
    return getattr(strategy.extended, "_num_workers", 1) > 1


def _sum_over_replicas(strategy, values):
    """The sum over every replica of each one's ``values`` (a float64 vector), in a tf.function (the
    strategy warns about eager collectives)."""
    import tensorflow as tf

    total = tf.function(lambda: strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(
        lambda: tf.constant(values, tf.float64)), axis=None))
    return total().numpy()


def barrier(strategy):
    """Wait until every worker gets here (a one-number all-reduce); nothing without several workers."""
    if is_multi_worker(strategy):
        _sum_over_replicas(strategy, [1.0])


def check_workers_agree(strategy, stages_done, epoch):
    """Refuse to train when the workers would resume from different places (stages finished, epoch of
    the current stage, as each read the chief's run folder): their collectives would not match."""
    if not is_multi_worker(strategy):
        return
    where = float(stages_done * 1_000_000 + epoch)
    sums = _sum_over_replicas(strategy, [where, where * where])
    replicas = strategy.num_replicas_in_sync
    if abs(sums[0] - replicas * where) > 0.5 or abs(sums[1] - replicas * where * where) > 0.5:
        raise UserError(
            "the workers would resume from different epochs: each must read the chief's run folder "
            "(runtime.output_dir on storage every worker sees); start every worker again with the same command"
        )


@contextlib.contextmanager
def lost_worker_errors(strategy, run_folder):
    """Turn the error a worker meets when another one is lost into one ``UserError`` line."""
    import tensorflow as tf

    lost = (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.CancelledError,
            tf.errors.DeadlineExceededError, tf.errors.InternalError)
    try:
        yield
    except lost as error:
        if not is_multi_worker(strategy):
            raise
        text = str(error.message if hasattr(error, "message") else error)
        cause = text.split("Collective ops is aborted by: ")[-1].strip().splitlines()[0]
        raise UserError(
            f"multi-worker training stopped: a worker was lost ({type(error).__name__}: {cause}); the run folder "
            f"{run_folder} keeps every finished epoch: start every worker again with the same command to resume"
        ) from None


def patch_keras():
    """Make ``model.fit``/``evaluate`` work under MultiWorkerMirroredStrategy with several workers.

    1. Before the first step Keras all-reduces a whole nested batch (``strategy.reduce`` of a dict of
       inputs, labels, weights) only to learn its shapes, which the strategy cannot do for a nested
       value (keras-team/keras#20329); this worker's own batch has the same shapes.
    2. Keras averages each step's scalar logs over axis 0 with the workers' collectives, which a
       scalar does not have (tensorflow/tensorflow#72388); they are averaged over the replicas instead.
    """
    import tensorflow as tf
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer, "_kerasflow_multi_worker", False):
        return

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tree.map_structure(
                    lambda value: self.distribute_strategy.experimental_local_results(value)[0]
                    if isinstance(value, tf.distribute.DistributedValues) else value,
                    next(batches),
                )
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    original_reduce = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            return tree.map_structure(
                lambda value: strategy.reduce("MEAN", value, axis=None if value.shape.rank == 0 else 0), values)
        return original_reduce(values, strategy, reduction)

    trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    trainer.reduce_per_replica = reduce_per_replica
    trainer._kerasflow_multi_worker = True
