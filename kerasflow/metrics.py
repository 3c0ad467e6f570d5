"""Test-set metrics of a model: top-1/top-5, per-class accuracy, confusion matrix, seconds per video."""

import dataclasses
import time

import numpy as np

from kerasflow.atomic import atomic_path


@dataclasses.dataclass
class EvaluationResult:
    """Predictions of a model over a test set and the times they took (seconds, whole set)."""

    logits: np.ndarray  # (N, K)
    labels: np.ndarray  # (N,)
    decode_seconds: float
    model_seconds: float
    stream_seconds: dict  # {"rgb_stream": s, "flow_stream": s} when measured separately

    @property
    def num_videos(self):
        return len(self.labels)

    @property
    def top1(self):
        return top_k_accuracy(self.logits, self.labels, 1)

    @property
    def top5(self):
        return top_k_accuracy(self.logits, self.labels, 5)

    @property
    def seconds_per_video(self):
        return (self.decode_seconds + self.model_seconds) / max(self.num_videos, 1)

    def confusion(self):
        return confusion_matrix(self.labels, self.logits.argmax(axis=1), self.logits.shape[1])

    def summary(self, class_names=None):
        """JSON-ready numbers."""
        confusion = self.confusion()
        totals = confusion.sum(axis=1)
        per_class = np.divide(np.diag(confusion), totals, out=np.zeros(len(totals)), where=totals > 0)
        names = class_names or [str(k) for k in range(len(per_class))]
        videos = max(self.num_videos, 1)
        return {
            "top1": self.top1,
            "top5": self.top5,
            "num_videos": self.num_videos,
            "seconds_per_video": self.seconds_per_video,
            "seconds_per_video_split": {
                "decode": self.decode_seconds / videos,
                "model": self.model_seconds / videos,
                **{name: seconds / videos for name, seconds in self.stream_seconds.items()},
            },
            "per_class_accuracy": {name: float(a) for name, a in zip(names, per_class)},
        }


def top_k_accuracy(logits, labels, k):
    """Fraction of rows whose label is among the ``k`` largest logits (all of them when k >= K)."""
    if len(labels) == 0:
        return 0.0
    k = min(k, logits.shape[1])
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def confusion_matrix(labels, predictions, num_classes):
    """``(K, K)`` counts: row = true class, column = predicted class."""
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def evaluate(model, dataset, num_classes, streams=(), clips=1, average="logits"):
    """Run ``model`` over ``dataset`` (``(inputs, label, weight)`` batches), timing decoding and the model.

    Examples of weight 0 (bad clips the pipeline skipped) are left out. ``streams``: sub-models (e.g.
    ``rgb_stream``, ``flow_stream``) to time separately on the same batches. ``clips`` > 1: the inputs
    hold that many clips per video (``(B, clips, ...)``), averaged as ``average`` says
    (``average_clip_scores``).
    """
    from kerasflow.backend import predict_logits, run_model

    logits, labels = [], []
    decode = compute = 0.0
    stream_seconds = {stream.name: 0.0 for stream in streams}
    iterator = iter(dataset)
    while True:
        start = time.perf_counter()
        try:
            inputs, label, weight = next(iterator)
        except StopIteration:
            break
        decode += time.perf_counter() - start
        if clips > 1:
            inputs = {name: np.reshape(value, (-1, *value.shape[2:])) for name, value in inputs.items()}
        start = time.perf_counter()
        output = predict_logits(model, inputs)
        compute += time.perf_counter() - start
        if clips > 1:
            output = average_clip_scores(output.reshape(-1, clips, output.shape[-1]), average)
        kept = np.asarray(weight) > 0
        logits.append(output[kept])
        labels.append(np.asarray(label)[kept])
        for stream in streams:
            start = time.perf_counter()
            run_model(stream, inputs[stream.inputs[0].name])
            stream_seconds[stream.name] += time.perf_counter() - start
    if not logits:
        return EvaluationResult(np.zeros((0, num_classes), np.float32), np.zeros(0, np.int64), decode, 0.0, {})
    return EvaluationResult(np.concatenate(logits), np.concatenate(labels).astype(np.int64), decode, compute,
                            stream_seconds)


def average_clip_scores(logits, average="logits"):
    """``(B, clips, K)`` logits -> ``(B, K)`` logits of each video: the mean of its clips' logits for
    ``average="logits"`` (ego-rnn's ``eval-run-flow.py``), or for ``"softmax"`` the log of the mean of their
    softmax (so the result's softmax is the mean probability)."""
    if average == "logits":
        return np.asarray(logits, np.float64).mean(axis=1).astype(np.float32)
    if average != "softmax":
        raise ValueError(f"`average` must be 'logits' or 'softmax'. Received: average={average!r}")
    shifted = np.asarray(logits, np.float64) - np.max(logits, axis=-1, keepdims=True)
    probabilities = np.exp(shifted) / np.exp(shifted).sum(axis=-1, keepdims=True)
    return np.log(np.maximum(probabilities.mean(axis=1), 1e-12)).astype(np.float32)


def plot_confusion_matrix(confusion, class_names, path, title="Confusion matrix"):
    """Draw the row-normalised confusion matrix to ``path`` (PNG, written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    totals = confusion.sum(axis=1, keepdims=True)
    normalised = np.divide(confusion, totals, out=np.zeros(confusion.shape), where=totals > 0)
    size = min(4 + 0.25 * len(class_names), 30)
    figure, axes = plt.subplots(figsize=(size, size))
    image = axes.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(class_names))
    axes.set_xticks(ticks, class_names, rotation=90, fontsize=8)
    axes.set_yticks(ticks, class_names, fontsize=8)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    if len(class_names) <= 20:
        for (row, column), count in np.ndenumerate(confusion):
            if count:
                axes.text(column, row, str(count), ha="center", va="center",
                          color="white" if normalised[row, column] > 0.5 else "black", fontsize=8)
    figure.colorbar(image, ax=axes, fraction=0.046)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100, format="png")
    plt.close(figure)
