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

import dataclasses
import json
import os
import tempfile
from pathlib import Path

import keras

from kerasflow import evaluation
from kerasflow.data.indexes import build_index
from kerasflow.data.pipeline import BadVideoLog, BadVideoReport, make_dataset
from kerasflow.data.synthetic import make_synthetic_dataset
from kerasflow.data.tfrecord import make_tfrecord_dataset, read_sidecar
from kerasflow.errors import UserError
from kerasflow.files import write_json
from kerasflow.model_files import MODEL_FILE, save_model, save_weights
from kerasflow.models import STAGE_MODEL, build_stage_models, set_trainable_for_stage
from kerasflow.models.common import walk_layers
from kerasflow.backbones.weights import read_weights_config
from kerasflow.optimizers import TorchAdam, TorchSGD
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


def stage_frames(recipe, stage):
    """Frames of the clip the model of ``stage`` takes (the flow stage's clip has the flow frame count)."""
    rgb_frames, flow_frames = recipe.frames_for(recipe.stage(stage))
    return flow_frames if stage == "flow" else rgb_frames


def model_metadata(recipe, class_names, stage):
    """What evaluate/predict need to feed a saved model: its kind, inputs and class names."""
    return {
        "kind": recipe.model.kind,
        "stage": stage,
        "model": STAGE_MODEL[stage],
        "streams": list(stage_streams(recipe.model.kind, stage)),
        "rgb_frames": stage_frames(recipe, stage),
        "flow_frames": recipe.frames_for(recipe.stage(stage))[1],
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
        # best.keras is written before state.json: after a kill in between, its own record is newer.
        best_file = run.stage_dir(stage) / "best.keras.json"
        saved_best = json.loads(best_file.read_text()).get("val_accuracy", -1.0) if best_file.exists() else -1.0
        self.best = max(run.state["current"].get("best", -1.0), saved_best)

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
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                save_recipe(self.recipe, saved)
            except OSError as error:
                raise UserError(
                    f"cannot write the run folder {self.folder} ({error.strerror}); set runtime.output_dir "
                    "to a writable folder"
                ) from None

    def check_classes(self, class_names):
        """Record the class list, or refuse a resumed run whose dataset now has other classes."""
        path = self.folder / "classes.json"
        if path.exists():
            previous = json.loads(path.read_text())
            if previous != class_names:
                added = sorted(set(class_names) - set(previous))
                removed = sorted(set(previous) - set(class_names))
                raise UserError(
                    f"{self.folder} was trained on other classes than {self.recipe.data.root} holds now "
                    f"(added {added}, removed {removed}, or reordered); restore the dataset or use another "
                    "runtime.output_dir"
                )
        else:
            write_json(path, class_names)

    def stage_dir(self, stage):
        folder = self.folder / "stages" / stage
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def update_state(self, **changes):
        self.state.update(changes)
        write_json(self.state_path, self.state)

    @property
    def stages_done(self):
        return [stage.name for stage in self.recipe.stages] == self.state["completed"]

    @property
    def finished(self):
        """All stages trained and the final model and metrics written (the last step of a run)."""
        metrics = self.folder / "metrics.json"
        return (
            self.stages_done
            and (self.folder / MODEL_FILE).exists()
            and metrics.exists()
            and "final" in json.loads(metrics.read_text())
        )


def _optimizer(model, stage):
    """The stage's optimizer with PyTorch's semantics (L2 weight decay; the flow stream's own SGD rate)."""
    if stage.optimizer == "adam":
        return TorchAdam(l2=stage.weight_decay, learning_rate=stage.learning_rate, epsilon=stage.epsilon)
    slow, factor = [], 1.0
    if stage.flow_learning_rate is not None:
        slow = [
            variable
            for path, layer in walk_layers(model)
            if path.startswith("flow_stream/")
            for variable in layer.trainable_weights
        ]
        factor = stage.flow_learning_rate / stage.learning_rate
    return TorchSGD(
        l2=stage.weight_decay,
        slow_variables=slow,
        slow_factor=factor,
        learning_rate=stage.learning_rate,
        momentum=stage.momentum or 0.0,
    )


def _compile(model, stage):
    model.compile(
        optimizer=_optimizer(model, stage),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


def clip_dataset(recipe, index, subset, *, streams, frames, batch_size, training, seed, bad_videos):
    """The dataset of one subset: RGB clips from ``data.packed`` TFRecords when given, else decoded videos."""
    packed = recipe.data.packed
    common = dict(rgb_frames=frames, frame_size=recipe.data.frame_size, batch_size=batch_size,
                  training=training, seed=seed, random_flip=recipe.data.random_flip)
    if packed is not None and tuple(streams) == ("rgb",):
        path = packed.train if subset == "train" else packed.test
        if read_sidecar(path).get("class_names") != index.class_names:
            raise UserError(f"{path} was packed with other classes than {recipe.data.root} holds; pack it again")
        return make_tfrecord_dataset(path, **common)
    return make_dataset(index, streams=streams, flow_stack=recipe.data.flow_stack,
                        on_bad_video=recipe.data.on_bad_video, bad_videos=bad_videos, **common)


def _datasets(recipe, stage, train, test, bad_videos, seed):
    """Training and test datasets of ``stage``."""
    batch_size = recipe.batch_size_for(stage)
    if batch_size > len(train.items):
        raise UserError(
            f"stage {stage.name}: batch size {batch_size} is larger than the {len(train.items)} "
            "training videos (training drops incomplete batches); lower data.batch_size or the stage's batch_size"
        )
    options = dict(streams=stage_streams(recipe.model.kind, stage.name), frames=stage_frames(recipe, stage.name),
                   batch_size=batch_size, seed=seed, bad_videos=bad_videos)
    return (
        clip_dataset(recipe, train, "train", training=True, **options),
        clip_dataset(recipe, test, "test", training=False, **options),
    )


def _check_weights_file(recipe):
    """Fail before any work when ``model.weights`` names a missing or unconverted file."""
    if recipe.model.weights:
        try:
            read_weights_config(recipe.model.weights)
        except UserError as error:
            raise UserError(f"model.weights: {error}") from None


def _is_chief(strategy):
    """Whether this process writes the run folder (always, except the non-chief multi-worker workers)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "chief" or (not has_chief and task_type == "worker" and task_id == 0)


def train_recipe(recipe, log=print):
    """Run every stage of ``recipe`` that is not finished yet; return the run's ``metrics`` dict."""
    if Run(recipe).finished:
        log(f"{recipe.runtime.output_dir}: all stages are finished; nothing to train "
            "(delete the folder to train again)")
        return json.loads((Path(recipe.runtime.output_dir) / "metrics.json").read_text())
    _check_weights_file(recipe)
    strategy = configure(recipe.runtime)
    if not _is_chief(strategy):
        # Other multi-worker workers train in step with the chief but keep their files to themselves.
        runtime = dataclasses.replace(recipe.runtime, output_dir=tempfile.mkdtemp(prefix="kerasflow-worker-"))
        recipe = dataclasses.replace(recipe, runtime=runtime)
    run = Run(recipe)
    train, test = dataset_indexes(recipe.data)
    class_names = train.class_names
    run.check_classes(class_names)
    log(f"{recipe.data.dataset}: {len(train.items)} training and {len(test.items)} test videos, "
        f"{len(class_names)} classes; {strategy.num_replicas_in_sync} replica(s)")
    metrics = {"stages": {}}
    if (run.folder / "metrics.json").exists():
        metrics = json.loads((run.folder / "metrics.json").read_text())
    bad_videos = BadVideoLog()
    if not run.stages_done:
        _train_stages(recipe, run, strategy, train, test, class_names, metrics, bad_videos, log)

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


def _train_stages(recipe, run, strategy, train, test, class_names, metrics, bad_videos, log):
    """Train the stages not finished yet, each from where the earlier ones left the shared streams."""
    with strategy.scope():
        models = build_stage_models(recipe.model, recipe.data, len(class_names))
    for finished in run.state["completed"]:
        models[STAGE_MODEL[finished]].load_weights(run.stage_dir(finished) / "final.weights.h5")
    for stage in recipe.stages:
        if stage.name in run.state["completed"]:
            continue
        model = models[STAGE_MODEL[stage.name]]
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
        # A resumed run must not replay the first epochs' shuffling and augmentation.
        train_data, test_data = _datasets(recipe, stage, train, test, bad_videos, recipe.runtime.seed + initial_epoch)
        callbacks = [
            keras.callbacks.LearningRateScheduler(stage.learning_rate_at),
            StageCheckpoint(run, stage.name, model_metadata(recipe, class_names, stage.name)),
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
