"""Keras callbacks of a training stage: resumable checkpoints with the best model, and the bad-video report."""

import json

import keras

from kerasflow.errors import UserError
from kerasflow.model_io import save_model, save_weights
from kerasflow.training.run_folder import model_info


class StageCheckpoint(keras.callbacks.Callback):
    """After each epoch: keep the best model by validation accuracy, write a resumable checkpoint
    (weights and optimizer state, atomically), then record the epoch in ``state.json``."""

    def __init__(self, run, stage, class_names):
        super().__init__()
        self.run, self.stage, self.class_names = run, stage, class_names
        # best.keras is written before state.json: after a kill in between, its own record is newer.
        best_file = run.stage_dir(stage) / "best.keras.json"
        saved_best = json.loads(best_file.read_text()).get("val_accuracy", -1.0) if best_file.exists() else -1.0
        self.best = max(run.state["current"].get("best", -1.0), saved_best)

    def on_epoch_end(self, epoch, logs=None):
        accuracy = (logs or {}).get("val_accuracy", (logs or {}).get("accuracy", 0.0))
        folder = self.run.stage_dir(self.stage)
        if accuracy > self.best:
            self.best = float(accuracy)
            info = model_info(self.run.recipe, self.class_names, self.stage, val_accuracy=self.best)
            save_model(self.model, str(folder / "best.keras"), info)
        path = folder / f"checkpoint-{epoch + 1}.weights.h5"
        save_weights(self.model, str(path))
        self.run.update_state(current={"stage": self.stage, "epoch": epoch + 1, "best": self.best})
        for old in folder.glob("checkpoint-*.weights.h5"):
            if old != path:
                old.unlink()


class BadVideoReport(keras.callbacks.Callback):
    """Prints the ``BadVideoLog`` summaries at the end of every epoch in which any clip was skipped so far.

    ``bad_videos``: the ``(train, test)`` logs of the stage's two datasets.
    """

    def __init__(self, bad_videos):
        super().__init__()
        self.bad_videos = bad_videos

    def on_epoch_end(self, epoch, logs=None):
        for subset, log in zip(("train", "test"), self.bad_videos):
            if log.count > 0:
                print(f"epoch {epoch + 1} ({subset}): {log.summary()}", flush=True)


class TrainingDataGuard(keras.callbacks.Callback):
    """Stops a stage whose epoch decoded no training clip at all (every one skipped as bad), so it is
    never recorded as trained on nothing."""

    def __init__(self, train_log, stage, batch_size):
        super().__init__()
        self.train_log, self.stage, self.batch_size = train_log, stage, batch_size
        self._skips_before = 0
        self._batches = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._skips_before, self._batches = self.train_log.skips, 0

    def on_train_batch_end(self, batch, logs=None):
        self._batches = batch + 1

    def on_epoch_end(self, epoch, logs=None):
        skipped = self.train_log.skips - self._skips_before
        if skipped and skipped >= self._batches * self.batch_size:
            raise UserError(f"stage {self.stage}: no training video could be decoded in epoch {epoch + 1} (all "
                            f"{skipped} were skipped as bad: {self.train_log.summary(shown=2)}); repair or replace "
                            "them, then run the same command again")
