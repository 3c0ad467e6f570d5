"""The staged training of a recipe (seed §III-A; EgoRCNN's stages), resumable after any interruption.

``train_recipe`` runs the stages of the recipe's model kind in order, each with its optimizer,
schedule, batch size and frame count, each starting from where the earlier ones left the shared
stream bodies; then it keeps the last stage's best model (``training.keep: best``) or its last epoch
(``last``) as the run's model and evaluates it. The
run folder (``run_folder``) records every epoch, so re-running the same recipe resumes.
"""

import contextlib
import json
import logging
import os
import shutil
from pathlib import Path

import keras

from kerasflow import metrics
from kerasflow.atomic import disk_errors_as_user_errors
from kerasflow.backbones.imagenet import imagenet_weights
from kerasflow.backbones.registry import IMAGENET
from kerasflow.backbones.weights import read_weights_config
from kerasflow.backend import check_runtime
from kerasflow.data.check import check_recipe_data
from kerasflow.data.datasets import AUTO
from kerasflow.data.feeds import auto_validation_note, model_dataset, recipe_indexes, test_clips, validation_split
from kerasflow.data.pipeline import BadVideoLog
from kerasflow.errors import UserError
from kerasflow.model_io import MODEL_FILE, load_model_file, load_weights, save_model, save_weights
from kerasflow.models.kinds import STAGE_MODEL
from kerasflow.training.callbacks import BadVideoReport, StageCheckpoint, TrainingDataGuard
from kerasflow.training.folder_lock import folder_lock
from kerasflow.training.init_from import initialize_from
from kerasflow.training.multi_worker import (
    barrier,
    check_workers_agree,
    is_chief_task,
    lost_worker_errors,
    new_worker_folder,
)
from kerasflow.training.optimizers import TorchAdam, TorchSGD
from kerasflow.training.run_folder import RunFolder, model_info
from kerasflow.training.runtime_setup import configure, forward_function, use_xla
from kerasflow.visualize import plot_training_curves

logger = logging.getLogger("kerasflow")


def _optimizer(stage, groups):
    """The stage's optimizer with PyTorch's semantics: L2 weight decay and the parameter ``groups``
    (``ModelKind.optimizer_groups``: ``[(variables, learning-rate factor, L2)]``)."""
    if stage.optimizer == "adam":
        return TorchAdam(l2=stage.weight_decay, groups=groups, learning_rate=stage.learning_rate,
                         epsilon=stage.epsilon)
    return TorchSGD(l2=stage.weight_decay, groups=groups, learning_rate=stage.learning_rate,
                    momentum=stage.momentum or 0.0)


def _compile(model, stage, groups, jit_compile):
    model.compile(
        optimizer=_optimizer(stage, groups),
        jit_compile=use_xla(jit_compile),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


def stage_datasets(recipe, stage, train, validation, bad_videos, seed):
    """Training and validation datasets of ``stage``, fed as the model that stage trains takes them.

    ``bad_videos`` is a ``(train log, test log)`` pair of ``BadVideoLog``s.
    """
    options = dict(inputs=recipe.inputs_for(stage.name), batch_size=recipe.batch_size_for(stage), seed=seed)
    return (
        model_dataset(recipe.data, train, "train", training=True, bad_videos=bad_videos[0], **options),
        model_dataset(recipe.data, validation, validation.subset, training=False, bad_videos=bad_videos[1],
                      **options),
    )


def test_dataset(recipe, stage, test, bad_videos):
    """The test subset for the model ``stage`` trains, with ``evaluation.clips`` clips per video."""
    return model_dataset(recipe.data, test, "test", inputs=recipe.inputs_for(stage.name),
                         batch_size=recipe.batch_size_for(stage), training=False, seed=recipe.runtime.seed,
                         bad_videos=bad_videos[1], clips=recipe.evaluation.clips)


def check_weights_file(recipe):
    """Fail before any work when the ImageNet weights a stream starts from cannot be had: fetched and
    converted here on first use for ``imagenet``, read for a file."""
    for stream in recipe.kind.streams:
        backbone, weights = recipe.model.stream_weights(stream)
        try:
            if weights == IMAGENET:
                imagenet_weights(backbone)  # fetched and converted now if not cached yet
            elif weights:
                read_weights_config(weights)
        except UserError as error:
            key = "flow_weights" if stream == "flow" and recipe.model.flow_weights else "weights"
            raise UserError(f"model.{key}: {error}") from None


def check_batch_sizes(recipe, training, held_out=0):
    """Refuse a stage whose batch is larger than the ``training`` videos that really train (after the
    ``held_out`` validation clips left): it would run 0 steps, since training drops incomplete batches."""
    for stage in recipe.trained_stages:
        batch_size = recipe.batch_size_for(stage)
        if batch_size > training:
            after = f" left after holding out {held_out} for validation (data.validation)" if held_out else ""
            raise UserError(
                f"stage {stage.name}: batch size {batch_size} is larger than the {training} training videos{after} "
                "(training drops incomplete batches); lower data.batch_size or the stage's batch_size"
            )


def _evaluate(model, recipe, stage, test, bad_videos, what):
    """Test metrics of ``model`` (the model ``stage`` trains); refuses a test subset of which no video
    could be decoded."""
    clips = test_clips(recipe.inputs_for(stage.name), recipe.evaluation.clips)
    result = metrics.evaluate(forward_function(model, recipe.runtime.jit_compile),
                              test_dataset(recipe, stage, test, bad_videos), len(test.class_names), clips=clips,
                              average=recipe.evaluation.average)
    if result.num_videos == 0:
        raise UserError(f"{what}: no test video could be decoded (every one was skipped as bad); repair or "
                        "replace them, then run the same command again")
    return result


def train_recipe(recipe, log=print):
    """Run every stage of ``recipe`` that is not finished yet; return the run's metrics dict.

    The run folder is locked for the process's life (``folder_lock``): a second process there stops
    in one line. The other workers of a multi-worker run only read it."""
    check_runtime(recipe.runtime)
    chief = is_chief_task(recipe.runtime)
    with folder_lock(recipe.runtime.output_dir) if chief else contextlib.nullcontext():
        return _train_run(recipe, chief, log)


def _train_run(recipe, chief, log):
    run = RunFolder(recipe)
    if run.finished:
        log(f"{recipe.runtime.output_dir}: all stages are finished; nothing to train "
            "(delete the folder to train again)")
        return run.read_metrics()
    if recipe.skipped_stages:
        log(f"model.kind {recipe.model.kind} trains {', '.join(recipe.kind.stages)}; "
            f"skipping the recipe's {', '.join(recipe.skipped_stages)}")
    if chief:
        return _train_recipe(recipe, run, chief, log)
    # The other workers of a multi-worker run train in step with the chief from a private copy of its
    # run folder, made now: the chief is waiting for every worker (in configure) and changes nothing.
    worker_run = run.private_copy(new_worker_folder())
    try:
        return _train_recipe(worker_run.recipe, worker_run, chief, log, shown_folder=run.folder)
    finally:
        shutil.rmtree(worker_run.folder, ignore_errors=True)


def _train_recipe(recipe, run, chief, log, shown_folder=None):
    strategy = configure(recipe.runtime)
    with lost_worker_errors(strategy, shown_folder or run.folder):
        return _train_and_evaluate(recipe, run, strategy, chief, log)


def _train_and_evaluate(recipe, run, strategy, chief, log):
    if not chief:
        barrier(strategy)  # the chief prepares the data first (e.g. writes the synthetic videos)
    indexes = recipe_indexes(recipe.data)
    if chief:
        barrier(strategy)
    checked = check_recipe_data(recipe, *indexes, log=log)
    train, test = checked.train, checked.test
    check_weights_file(recipe)
    train, validation = validation_split(recipe.data, train, test)
    if recipe.data.validation == AUTO and validation is test:
        log(auto_validation_note(train))
    check_batch_sizes(recipe, len(train.items), 0 if validation is test else len(validation.items))
    class_names = train.class_names
    models = None if run.stages_done else _build_models(recipe, strategy, class_names, log)
    run.start(class_names, train, validation, test)
    held_out = "the test subset" if validation is test else f"{len(validation.items)} held out"
    log(f"{recipe.data.dataset}: {len(train.items)} training videos, validation on {held_out}, "
        f"{len(test.items)} test videos, {len(class_names)} classes; {strategy.num_replicas_in_sync} replica(s)")
    run_metrics = run.read_metrics()
    bad_videos = (BadVideoLog(), BadVideoLog())
    if not run.stages_done:
        _train_stages(recipe, run, strategy, models, (train, validation, test), class_names, run_metrics, bad_videos,
                      log)

    last = recipe.trained_stages[-1]
    kept = kept_model(run.stage_dir(last.name), recipe.training.keep)
    result = _evaluate(kept, recipe, last, test, bad_videos, "the final model")
    save_model(kept, str(run.folder / MODEL_FILE), model_info(recipe, class_names, last.name))
    run_metrics["final"] = {"stage": last.name, "kept": recipe.training.keep, "clips": recipe.evaluation.clips,
                            **result.summary(class_names)}
    metrics.plot_confusion_matrix(
        result.confusion(), class_names, str(run.folder / "confusion_matrix.png"),
        f"{recipe.model.kind} (final), test: top-1 {result.top1:.3f}",
    )
    run.write_metrics(run_metrics)
    return run_metrics


def kept_model(stage_folder, keep):
    """The model a finished stage keeps (``training.keep``): its ``best`` epoch on validation
    (``best.keras``) or its ``last`` epoch (``final.weights.h5`` in the same model)."""
    model = load_model_file(Path(stage_folder) / "best.keras")
    if keep == "last":
        load_weights(model, Path(stage_folder) / "final.weights.h5")
    return model


def _resume_epoch(run, stage, model, log):
    """The epoch the current stage resumes after (its checkpoint loaded into ``model``), or 0 when it
    starts, or starts again because its checkpoint is missing or damaged."""
    current = run.state.get("current", {})
    folder = run.stage_dir(stage.name)
    if current.get("stage") == stage.name and current.get("epoch"):
        epoch = current["epoch"]
        checkpoint = folder / f"checkpoint-{epoch}.weights.h5"
        try:
            model.optimizer.build(model.trainable_variables)
            load_weights(model, checkpoint)
            log(f"{stage.name}: resuming after epoch {epoch} of {stage.epochs}")
            return epoch
        except (OSError, ValueError, KeyError) as error:
            reason = "is missing" if not checkpoint.exists() else f"cannot be read ({type(error).__name__})"
            logger.warning("%s %s; training stage %s again from its first epoch", checkpoint, reason, stage.name)
            for path in folder.iterdir():
                path.unlink()
    run.update_state(current={"stage": stage.name, "epoch": 0, "best": -1.0})
    return 0


def _build_models(recipe, strategy, class_names, log):
    """The models the stages train, started from ``model.init_from`` when the recipe names it: built before
    the run folder is written, so a source that does not fit the model leaves no folder behind."""
    with strategy.scope():
        models = recipe.kind.build_models(recipe.model, recipe.data, len(class_names))
    if recipe.model.init_from:
        initialize_from(recipe, models, class_names, log)
    return models


def _train_stages(recipe, run, strategy, models, subsets, class_names, run_metrics, bad_videos, log):
    """Train the stages not finished yet in ``models`` (``_build_models``), each from where the earlier ones
    left the shared streams.

    ``subsets``: the ``(train, validation, test)`` indexes. The validation subset picks each stage's best
    checkpoint; the stage's test metrics are those of its last epoch, with the best checkpoint's beside.
    """
    train, validation, test = subsets
    for finished in run.state["completed"]:
        load_weights(models[STAGE_MODEL[finished]], run.stage_dir(finished) / "final.weights.h5")
    for stage in recipe.trained_stages:
        if stage.name in run.state["completed"]:
            continue
        model = models[STAGE_MODEL[stage.name]]
        folder = run.stage_dir(stage.name)
        with strategy.scope():
            trainable = recipe.kind.set_trainable(model, stage.name, recipe.model)
            _compile(model, stage, recipe.kind.optimizer_groups(model, stage, recipe.model), recipe.runtime.jit_compile)
            initial_epoch = _resume_epoch(run, stage, model, log)
        check_workers_agree(strategy, len(run.state["completed"]), initial_epoch)
        log(f"{stage.name}: training {len(trainable)} layers for {stage.epochs} epochs")
        # A resumed run must not replay the first epochs' shuffling and augmentation.
        train_data, validation_data = stage_datasets(recipe, stage, train, validation, bad_videos,
                                                     recipe.runtime.seed + initial_epoch)
        callbacks = [
            TrainingDataGuard(bad_videos[0], stage.name, recipe.batch_size_for(stage)),
            keras.callbacks.LearningRateScheduler(stage.learning_rate_at),
            StageCheckpoint(run, stage.name, class_names),
            keras.callbacks.CSVLogger(str(folder / "log.csv"), append=True),
            keras.callbacks.TensorBoard(str(run.folder / "tensorboard" / stage.name)),
            BadVideoReport(bad_videos),
        ]
        if initial_epoch < stage.epochs:
            with disk_errors_as_user_errors(run.folder):
                model.fit(
                    train_data,
                    validation_data=validation_data,
                    epochs=stage.epochs,
                    initial_epoch=initial_epoch,
                    callbacks=callbacks,
                    shuffle=False,  # the tf.data pipeline shuffles, seeded
                    verbose=2 if os.environ.get("CI") else "auto",
                )
        result = _evaluate(model, recipe, stage, test, bad_videos, f"stage {stage.name}")
        save_weights(model, str(folder / "final.weights.h5"))
        load_weights(model, folder / "best.keras")
        best = _evaluate(model, recipe, stage, test, bad_videos, f"stage {stage.name}")
        load_weights(model, folder / "final.weights.h5")  # the next stage starts from the last epoch
        best_info = json.loads((folder / "best.keras.json").read_text())
        run_metrics["stages"][stage.name] = {
            "clips": recipe.evaluation.clips, **result.summary(class_names),
            "best_checkpoint": {"val_accuracy": best_info["val_accuracy"], "top1": best.top1, "top5": best.top5},
        }
        run.write_metrics(run_metrics)
        run.update_state(completed=run.state["completed"] + [stage.name], current={})
        plot_training_curves(
            {name: run.stage_dir(name) / "log.csv" for name in run.state["completed"]}, run.folder / "curves.png"
        )
        log(f"{stage.name}: test top-1 {result.top1:.3f} (last epoch), {best.top1:.3f} (best checkpoint, "
            f"validation {best_info['val_accuracy']:.3f}), {result.seconds_per_video * 1000:.1f} ms per video")
