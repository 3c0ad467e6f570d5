"""The staged training of a recipe (seed §III-A; EgoRCNN's stages), resumable after any interruption.

Run folder (``runtime.output_dir``)::

    recipe.yaml              the resolved recipe (a re-run must match it)
    state.json               finished stages, and the current stage's last finished epoch
    classes.json             class names, in label order
    stages/<stage>/          checkpoint-<epoch>.weights.h5 (model + optimizer, atomic), best.keras,
                             final.weights.h5, log.csv
    tensorboard/<stage>/     TensorBoard logs
    model.keras (+ .json)    the final model: the last stage's best by validation accuracy
    metrics.json             test metrics per stage and of the final model
    curves.png               loss and accuracy per epoch of every finished stage
    confusion_matrix.png     the final model's test confusion matrix
"""

import json
import os
from pathlib import Path

import keras

from kerasflow import evaluation
from kerasflow.data.indexes import build_index
from kerasflow.data.pipeline import BadVideoLog, BadVideoReport, make_dataset
from kerasflow.data.synthetic import make_synthetic_dataset
from kerasflow.data.tfrecord import make_tfrecord_dataset, read_sidecar
from kerasflow.errors import UserError
from kerasflow.model_files import MODEL_FILE, save_model, save_weights, write_json
from kerasflow.models import STAGE_MODEL, build_stage_models, set_trainable_for_stage
from kerasflow.models.common import walk_layers
from kerasflow.optimizers import TwoRateSGD
from kerasflow.recipes import load_recipe, recipe_to_dict, save_recipe
from kerasflow.runtime import configure
from kerasflow.visualize import plot_training_curves


def stage_streams(kind, stage):
    """Which inputs the model of ``stage`` takes: ``rgb`` (a clip) and/or ``flow`` (TV-L1 stacks)."""
    optical = kind in ("optical_flow", "two_stream_optical_flow")
    if stage == "flow":
        return ("flow",) if optical else ("rgb",)
    if stage == "joint" and optical:
        return ("rgb", "flow")
    return ("rgb",)


def dataset_indexes(data):
    """The train and test ``VideoIndex`` of the recipe's dataset (making the synthetic one if needed).

    Neither depends on ``runtime.seed``: runs with different seeds see the same data and test set (the
    ``folder`` layout without lists is split with seed 0).
    """
    dataset, root = data.dataset, data.root
    if dataset == "synthetic":
        options = data.synthetic
        make_synthetic_dataset(
            root,
            classes=options.classes,
            videos_per_class=options.videos_per_class,
            frames=options.frames,
            size=options.size,
            seed=options.seed,
        )
        dataset = "folder"
    train = build_index(dataset, root, split=data.split, subset="train", flow_root=data.flow_root)
    test = build_index(dataset, root, split=data.split, subset="test", flow_root=data.flow_root)
    if train.class_names != test.class_names:
        raise UserError(f"{root}: the train and test subsets list different classes; check the split files")
    return train, test


def model_metadata(recipe, class_names, stage):
    """What evaluate/predict need to feed a saved model: its kind, inputs and class names."""
    rgb_frames, flow_frames = recipe.frames_for(recipe.stage(stage))
    return {
        "kind": recipe.model.kind,
        "stage": stage,
        "model": STAGE_MODEL[stage],
        "streams": list(stage_streams(recipe.model.kind, stage)),
        "rgb_frames": flow_frames if stage == "flow" else rgb_frames,
        "flow_frames": flow_frames,
        "flow_stack": recipe.data.flow_stack,
        "frame_size": recipe.data.frame_size,
        "class_names": class_names,
    }


class StageCheckpoint(keras.callbacks.Callback):
    """After each epoch: keep the best model by validation accuracy, write a resumable checkpoint
    (weights and optimizer state, atomically), then record the epoch in ``state.json``."""

    def __init__(self, run, stage, metadata):
        super().__init__()
        self.run, self.stage, self.metadata = run, stage, metadata
        self.best = run.state["current"].get("best", -1.0)

    def on_epoch_end(self, epoch, logs=None):
        accuracy = (logs or {}).get("val_accuracy", (logs or {}).get("accuracy", 0.0))
        folder = self.run.stage_dir(self.stage)
        if accuracy > self.best:
            self.best = float(accuracy)
            save_model(self.model, str(folder / "best.keras"), {**self.metadata, "val_accuracy": self.best})
        path = folder / f"checkpoint-{epoch + 1}.weights.h5"
        save_weights(self.model, str(path))
        self.run.update_state(current={"stage": self.stage, "epoch": epoch + 1, "best": self.best})
        for old in folder.glob("checkpoint-*.weights.h5"):
            if old != path:
                old.unlink()


class Run:
    """A run folder and its ``state.json``: which stages are finished, where the current one stands."""

    def __init__(self, recipe):
        self.recipe = recipe
        self.folder = Path(recipe.runtime.output_dir)
        self.state_path = self.folder / "state.json"
        self._check_or_save_recipe()
        self.state = {"completed": [], "current": {}}
        if self.state_path.exists():
            try:
                self.state = json.loads(self.state_path.read_text())
            except ValueError:
                raise UserError(f"{self.state_path} is corrupt; delete the run folder to start again") from None

    def _check_or_save_recipe(self):
        saved = self.folder / "recipe.yaml"
        if saved.exists():
            previous = load_recipe(saved)
            if recipe_to_dict(previous) != recipe_to_dict(self.recipe):
                raise UserError(
                    f"{self.folder} holds a run of a different recipe ({saved}); "
                    "set another runtime.output_dir or delete that folder"
                )
        else:
            self.folder.mkdir(parents=True, exist_ok=True)
            save_recipe(self.recipe, saved)

    def stage_dir(self, stage):
        folder = self.folder / "stages" / stage
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def update_state(self, **changes):
        self.state.update(changes)
        write_json(self.state_path, self.state)

    @property
    def finished(self):
        return [stage.name for stage in self.recipe.stages] == self.state["completed"]


def _optimizer(model, stage):
    """The stage's optimizer; with ``flow_learning_rate``, the flow stream learns at that rate."""
    options = dict(learning_rate=stage.learning_rate, weight_decay=stage.weight_decay or None)
    if stage.optimizer == "adam":
        return keras.optimizers.Adam(epsilon=stage.epsilon, **options)
    options["momentum"] = stage.momentum or 0.0
    if stage.flow_learning_rate is None or stage.flow_learning_rate == stage.learning_rate:
        return keras.optimizers.SGD(**options)
    slow = [
        variable
        for path, layer in walk_layers(model)
        if path.startswith("flow_stream/")
        for variable in layer.trainable_weights
    ]
    return TwoRateSGD(slow_variables=slow, slow_factor=stage.flow_learning_rate / stage.learning_rate, **options)


def _compile(model, stage):
    model.compile(
        optimizer=_optimizer(model, stage),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


def _datasets(recipe, stage, train, test, bad_videos, seed):
    """Training and test datasets of ``stage``; RGB clips come from ``data.packed`` TFRecords if given."""
    rgb_frames, flow_frames = recipe.frames_for(stage)
    streams = stage_streams(recipe.model.kind, stage.name)
    if recipe.batch_size_for(stage) > len(train.items):
        raise UserError(
            f"stage {stage.name}: batch size {recipe.batch_size_for(stage)} is larger than the {len(train.items)} "
            "training videos (training drops incomplete batches); lower data.batch_size or the stage's batch_size"
        )
    common = dict(
        rgb_frames=flow_frames if stage.name == "flow" else rgb_frames,
        frame_size=recipe.data.frame_size,
        batch_size=recipe.batch_size_for(stage),
        seed=seed,
    )
    packed = recipe.data.packed
    if packed is not None and streams == ("rgb",):
        for path in (packed.train, packed.test):
            if read_sidecar(path).get("class_names") != train.class_names:
                raise UserError(f"{path} was packed with other classes than {recipe.data.root} holds; pack it again")
        return (
            make_tfrecord_dataset(packed.train, training=True, random_flip=recipe.data.random_flip, **common),
            make_tfrecord_dataset(packed.test, training=False, **common),
        )
    options = dict(
        common,
        streams=streams,
        flow_stack=recipe.data.flow_stack,
        on_bad_video=recipe.data.on_bad_video,
        bad_videos=bad_videos,
    )
    return (
        make_dataset(train, training=True, random_flip=recipe.data.random_flip, **options),
        make_dataset(test, training=False, **options),
    )


def train_recipe(recipe, log=print):
    """Run every stage of ``recipe`` that is not finished yet; return the run's ``metrics`` dict."""
    run = Run(recipe)
    if run.finished:
        log(f"{run.folder}: all stages are finished; nothing to train (delete the folder to train again)")
        return json.loads((run.folder / "metrics.json").read_text())
    strategy = configure(recipe.runtime)
    train, test = dataset_indexes(recipe.data)
    class_names = train.class_names
    (run.folder / "classes.json").write_text(json.dumps(class_names, indent=2))
    log(f"{recipe.data.dataset}: {len(train.items)} training and {len(test.items)} test videos, "
        f"{len(class_names)} classes")
    with strategy.scope():
        models = build_stage_models(recipe.model, recipe.data, len(class_names))
    for finished in run.state["completed"]:
        models[STAGE_MODEL[finished]].load_weights(run.stage_dir(finished) / "final.weights.h5")

    metrics = {"stages": {}}
    if (run.folder / "metrics.json").exists():
        metrics = json.loads((run.folder / "metrics.json").read_text())
    bad_videos = BadVideoLog()
    for stage in recipe.stages:
        if stage.name in run.state["completed"]:
            continue
        model = models[STAGE_MODEL[stage.name]]
        metadata = model_metadata(recipe, class_names, stage.name)
        folder = run.stage_dir(stage.name)
        initial_epoch = 0
        with strategy.scope():
            trainable = set_trainable_for_stage(model, stage.name)
            _compile(model, stage)
            current = run.state.get("current", {})
            if current.get("stage") == stage.name and current.get("epoch"):
                initial_epoch = current["epoch"]
                model.optimizer.build(model.trainable_variables)
                model.load_weights(folder / f"checkpoint-{initial_epoch}.weights.h5")
                log(f"{stage.name}: resuming after epoch {initial_epoch} of {stage.epochs}")
            else:
                run.update_state(current={"stage": stage.name, "epoch": 0, "best": -1.0})
        log(f"{stage.name}: training {len(trainable)} layers for {stage.epochs} epochs")
        train_data, test_data = _datasets(recipe, stage, train, test, bad_videos, recipe.runtime.seed)
        callbacks = [
            keras.callbacks.LearningRateScheduler(stage.learning_rate_at),
            StageCheckpoint(run, stage.name, metadata),
            keras.callbacks.CSVLogger(str(folder / "log.csv"), append=True),
            keras.callbacks.TensorBoard(str(run.folder / "tensorboard" / stage.name)),
            BadVideoReport(bad_videos),
        ]
        if initial_epoch < stage.epochs:
            model.fit(
                train_data,
                validation_data=test_data,
                epochs=stage.epochs,
                initial_epoch=initial_epoch,
                callbacks=callbacks,
                shuffle=False,  # the tf.data pipeline shuffles, seeded
                verbose=2 if os.environ.get("CI") else "auto",
            )
        save_weights(model, str(folder / "final.weights.h5"))
        result = evaluation.evaluate(model, test_data, len(class_names))
        metrics["stages"][stage.name] = result.summary(class_names)
        write_json(run.folder / "metrics.json", metrics)
        run.update_state(completed=run.state["completed"] + [stage.name], current={})
        plot_training_curves(
            {name: run.stage_dir(name) / "log.csv" for name in run.state["completed"]}, run.folder / "curves.png"
        )
        log(f"{stage.name}: test top-1 {result.top1:.3f}, {result.seconds_per_video * 1000:.1f} ms per video")

    last = recipe.stages[-1]
    best = keras.saving.load_model(run.stage_dir(last.name) / "best.keras", compile=False)
    save_model(best, str(run.folder / MODEL_FILE), model_metadata(recipe, class_names, last.name))
    _, test_data = _datasets(recipe, last, train, test, bad_videos, recipe.runtime.seed)
    result = evaluation.evaluate(best, test_data, len(class_names))
    metrics["final"] = {"stage": last.name, **result.summary(class_names)}
    evaluation.plot_confusion_matrix(
        result.confusion(), class_names, str(run.folder / "confusion_matrix.png"),
        f"{recipe.model.kind} (final), test: top-1 {result.top1:.3f}",
    )
    write_json(run.folder / "metrics.json", metrics)
    return metrics


def comparison_table(metrics):
    """The demo's table: test accuracy and seconds per video of each trained stream."""
    rows = [("RGB only (EgoRCNN)", "rgb_stage2"), ("RGB only (EgoRCNN)", "rgb_stage1"),
            ("flow stream only", "flow"), ("two-stream", "joint")]
    lines = [f"{'model':<24} {'top-1':>7} {'top-5':>7} {'s/video':>9}"]
    shown = set()
    for label, stage in rows:
        result = metrics["stages"].get(stage)
        if result is None or label in shown:
            continue
        shown.add(label)
        lines.append(f"{label:<24} {result['top1']:>7.3f} {result['top5']:>7.3f} {result['seconds_per_video']:>9.4f}")
    return "\n".join(lines)
