"""The recipe schema: what each key of a training recipe means, its default and what it allows.

A recipe has six sections: ``data`` (which videos, how they are sampled and cropped, batch size,
validation), ``model`` (which network), ``stages`` (the training stages, each with its optimizer and
learning-rate schedule), ``training`` (which epoch's model the run keeps), ``runtime`` (output folder,
seed, distribution, mixed precision) and ``evaluation`` (how models are tested), and may have a
seventh, ``search`` (what ``python -m kerasflow.tune`` varies;
``kerasflow.config.search_section``). The names a key accepts come from
the registries: datasets (``kerasflow.data.datasets``), model kinds (``kerasflow.models.kinds``) and
backbone presets (``kerasflow.backbones.registry``). What a model kind needs of a recipe, its
``ModelKind`` checks (``check_recipe``). The checking itself is ``validation.build``.

Path keys (``data.root``, ``data.flow_root``, ``model.weights``, ``model.init_from``, ``runtime.output_dir``)
are absolute in a ``Recipe``: ``loading`` resolves them against the working directory
(``model.weights: imagenet`` is a name, kept).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import string
import typing
from dataclasses import dataclass
from typing import Optional, Union

from kerasflow.backbones.registry import (
    DEFAULT_PRESET,
    IMAGENET,
    flow_stream_weights,
    imagenet_checkpoint,
    preset_names,
)
from kerasflow.config.search_section import SearchConfig
from kerasflow.config.validation import join_key, option
from kerasflow.data.datasets import dataset_names, get_dataset, option_keys
from kerasflow.data.inputs import CROPS, SAMPLINGS, InputSpec
from kerasflow.data.video import BAD_VIDEO_POLICIES
from kerasflow.models.flow_networks import flow_network_names
from kerasflow.models.kinds import STAGE_ORDER, STREAMS, get_kind, kind_names

logger = logging.getLogger("kerasflow")

OPTIMIZERS = ("adam", "sgd")
FUSIONS = ("features", "scores", "logits")
IMAGE_GRADIENTS = ("sobel", "central", "reference")
AVERAGES = ("logits", "softmax")
KEEPS = ("best", "last")
NORMALIZE_MODES = ("sample", "sample_channel", "none")
SCHEDULES = ("multistep", "exponential", "constant")
DISTRIBUTIONS = ("none", "mirrored", "multi_worker_mirrored")
PRECISIONS = ("float16", "bfloat16")  # runtime.mixed_precision's names; true means float16
JIT_COMPILE = ("auto",)  # runtime.jit_compile's name besides true and false
# runtime.output_dir may name these recipe values, e.g. runs/egtea-split{split}.
OUTPUT_DIR_FIELDS = ("dataset", "split", "kind", "backbone")

# Keras defaults, written into the resolved recipe when a stage leaves them out.
DEFAULT_SGD_MOMENTUM = 0.0
DEFAULT_ADAM_EPSILON = 1e-7
DEFAULT_MULTISTEP_GAMMA = 0.1


@dataclass(frozen=True)
class SyntheticConfig:
    """Options of the generated motion dataset (``data.dataset: synthetic``), made on first use."""

    classes: int = option(4, minimum=2, doc="number of classes, each one motion direction")
    videos_per_class: int = option(24, minimum=2, doc="videos made per class")
    frames: int = option(32, minimum=2, doc="frames per video")
    size: int = option(64, minimum=16, doc="frame width and height in pixels")
    seed: int = option(0, minimum=0, doc="the dataset's own seed: runtime.seed does not change the data")
    variant: str = option("patch", choices=("patch", "letters"),
                          doc="patch (a textured patch moving 1.5-3 px per frame) or letters (thin letters drifting "
                              "0.5-2 px per frame over a static texture, with sensor noise: harder motion)")


@dataclass(frozen=True)
class PackedConfig:
    """TFRecord files of the train and test subsets (``python -m kerasflow.data pack``).

    When given, the RGB clips are read from them by the pure-TF reader instead of decoding videos.
    """

    train: str = option(path=True, doc="the training subset's TFRecord file (python -m kerasflow.data pack)")
    test: str = option(path=True, doc="the test subset's TFRecord file")


@dataclass(frozen=True)
class DataConfig:
    """Which videos, how they are sampled, and the default batch size."""

    dataset: str = option(choices=dataset_names,
                          doc="which dataset: its layout under data.root and its splits (see Datasets below)")
    root: str = option(path=True, doc="the dataset's folder (for synthetic: where it is made)")
    split: int = option(1, minimum=1,
                        doc="the official split (gtea61 1-4, egtea and hmdb51 1-3, folder and synthetic 1)")
    frame_size: int = option(224, minimum=32, doc="crop size in pixels")
    rgb_frames: int = option(25, minimum=1, doc="frames per video for the RGB stream")
    flow_frames: int = option(16, minimum=1, doc="frames per video for the representation-flow stream")
    flow_stack: int = option(5, minimum=1, doc="TV-L1 baseline: flow pairs per stack")
    flow_root: Optional[str] = option(None, path=True,
                                      doc="TV-L1 baseline: the folder holding flow_x/ and flow_y/ (null: data.root)")
    batch_size: int = option(32, minimum=1, doc="default batch size (stages[].batch_size overrides it)")
    on_bad_video: str = option("skip", choices=BAD_VIDEO_POLICIES,
                               doc="a video that cannot be decoded: skip (warn and leave it out) or fail (stop)")
    random_flip: bool = option(True,
                               doc="horizontal flip in training (turn it off when classes depend on left/right "
                                   "motion)")
    crop: str = option("multiscale_corners", choices=CROPS,
                       doc="training crops: multiscale_corners (EgoRCNN's: shorter side to 256/224 of the crop, a "
                           "square of scale 1, 0.875, 0.75 or 0.656 at the centre or a corner, resized) or random "
                           "(the representation-flow code's: one crop at a random place, no rescaling); test: the "
                           "centre crop")
    spatial_subsample: int = option(1, minimum=1,
                                    doc="keep every n-th row and column before cropping (2: half resolution, as the "
                                        "representation-flow code reads HMDB51)")
    colour_jitter: float = option(0.0, minimum=0.0, maximum=1.0,
                                  doc="j > 0: each training clip's brightness, contrast and saturation times a "
                                      "factor from [1 - j, 1 + j], one draw for all its frames (its appearance "
                                      "changes from epoch to epoch, its motion does not); not with data.packed")
    flow_sampling: str = option("contiguous", choices=SAMPLINGS,
                                doc="how the flow clip is taken: contiguous (consecutive frames flow_stride apart "
                                    "from a random window, the centre at test; a shorter video repeats its last "
                                    "frame) or segments (spread over the video like the RGB clip)")
    flow_stride: int = option(2, minimum=1, doc="frames between two frames of a contiguous flow clip")
    validation: Optional[Union[float, str]] = option(None,
                                                     doc="what picks each stage's best checkpoint: test (the test "
                                                         "subset, as ego-rnn; optimistic), a fraction of each "
                                                         "class's training clips held out, a list file of training "
                                                         "clips, or auto (20 % held out when every class has at "
                                                         "least 50 training clips, else the test subset, which fit "
                                                         "says in one line); null: the dataset's default (see "
                                                         "Datasets below)")
    synthetic: Optional[SyntheticConfig] = option(None,
                                                  doc="the synthetic dataset's options (data.synthetic below); read "
                                                      "only with data.dataset: synthetic (ignored, with a note, "
                                                      "otherwise)")
    packed: Optional[PackedConfig] = option(None,
                                            doc="{train: FILE.tfrecord, test: FILE.tfrecord} made by python -m "
                                                "kerasflow.data pack: RGB clips are read from them")

    @staticmethod
    def _finish(values, key, checker):
        dataset = get_dataset(values["dataset"])
        if (values["packed"] is not None
                and (values["crop"] != "multiscale_corners" or values["spatial_subsample"] != 1)):
            checker.fail(f"{join_key(key, 'packed')}: the packed TFRecord reader crops as data.crop: "
                         "multiscale_corners at data.spatial_subsample: 1 only; "
                         "remove data.packed to decode the videos")
        values["validation"] = _validation(values["validation"], dataset, join_key(key, "validation"), checker)
        if values["colour_jitter"] and values["packed"] is not None:
            checker.invalid(join_key(key, "colour_jitter"), values["colour_jitter"],
                            "0 with data.packed (the TFRecord reader does not jitter colours)")
        if values["split"] > dataset.splits:
            allowed = "1" if dataset.splits == 1 else f"an integer from 1 to {dataset.splits}"
            checker.invalid(join_key(key, "split"), values["split"],
                            f"{allowed} ({dataset.name} has {dataset.splits} split{'s' if dataset.splits > 1 else ''})")
        hints = typing.get_type_hints(DataConfig)
        for option_key, owner in option_keys().items():
            if owner == dataset.name and values[option_key] is None:
                (options_class,) = [arg for arg in typing.get_args(hints[option_key]) if arg is not type(None)]
                values[option_key] = options_class()
            elif owner != dataset.name and values[option_key] is not None:
                # A recipe made for one dataset stays usable with another: e.g. the demo on one's own videos.
                logger.warning("%s: %s is only read with data.dataset: %s; ignoring it (data.dataset is %s)",
                               checker.source, join_key(key, option_key), owner, dataset.name)
                values[option_key] = None


def _validation(value, dataset, key, checker):
    """``data.validation`` resolved: ``"test"``, ``"auto"``, a fraction in (0, 1), or an existing list file's
    absolute path; null takes the dataset's default (the test subset for the paper's datasets, as ego-rnn;
    ``auto`` for folder and synthetic ones)."""
    if value is None:
        value = dataset.validation
    if isinstance(value, float):
        if not 0.0 < value < 1.0:
            checker.invalid(key, value, "test, auto, a fraction between 0 and 1, or a list file")
        return value
    if value in ("test", "auto"):
        return value
    path = os.path.abspath(os.path.expanduser(value))
    if not os.path.isfile(path):
        checker.invalid(key, value, "test, auto, a fraction between 0 and 1, or an existing list file of "
                                    "training clips (<class>/<name> lines)")
    return path


@dataclass(frozen=True)
class FlowConfig:
    """The representation-flow block and layers (``model.flow``), and how their parameters train.

    ``trainable`` is the original code's five flags, in its order: [image_gradient, grad_div, theta,
    lambda, tau]. ``learning_rate_scale`` and ``weight_decay`` make the flow layers' own parameters
    (theta, tau, lambda and their kernels) an optimiser group of their own, as the representation-flow
    code trains them: 0.01x the stage's rate, with the stage's weight decay (``weight_decay: null``, the
    default; a number gives the group its own L2).
    """

    num_layers: int = option(2, minimum=0, maximum=3,
                             doc="representation-flow layers in the flow block (0: no block, Table 5's without row)")
    iterations: int = option(20, minimum=1, doc="TV-L1 iterations each flow layer unrolls")
    position: int = option(2, minimum=1, maximum=3, doc="the backbone stage the flow block follows")
    bottleneck: int = option(32, minimum=1, doc="channels the block reduces its input to before the flow layers")
    image_gradient: str = option("sobel", choices=IMAGE_GRADIENTS,
                                 doc="sobel (the paper's eq. 9), central (OpenCV's TV-L1 gradient) or reference (the "
                                     "representation-flow code's border rule); docs/representation-flow.md gives all "
                                     "three")
    normalize: str = option("sample", choices=NORMALIZE_MODES,
                            doc="min-max to [0, 255] before each flow layer: sample (one min/max per sample), "
                                "sample_channel (per sample and channel) or none")
    trainable: list[int] = option((0, 1, 1, 1, 1), minimum=0, maximum=1,
                                  doc="the original code's five flags [image_gradient, grad_div, theta, lambda, "
                                      "tau]: which flow parameters train")
    learning_rate_scale: float = option(0.01, above=0.0,
                                        doc="the flow layers' own parameters (theta, tau, lambda and their kernels) "
                                            "train at this times the stage's rate")
    weight_decay: Optional[float] = option(None, minimum=0.0,
                                           doc="their L2 weight decay (null: the stage's, as the representation-flow "
                                               "code)")

    @staticmethod
    def _finish(values, key, checker):
        values["trainable"] = tuple(values["trainable"])
        if len(values["trainable"]) != 5:
            checker.invalid(join_key(key, "trainable"), list(values["trainable"]),
                            "5 flags 0/1: [image_gradient, grad_div, theta, lambda, tau]")

    @property
    def layer_options(self):
        """Arguments of every ``RepresentationFlow`` layer of the block."""
        return {"image_gradient": self.image_gradient, "normalize": self.normalize, "learnable": list(self.trainable)}


@dataclass(frozen=True)
class ModelConfig:
    """The network: which streams, backbone, ImageNet weights, representation-flow settings, fusion.

    ``weights`` is ``imagenet`` (torchvision's ImageNet weights of the backbone, fetched and cached on first
    use: ``kerasflow.backbones.imagenet``), a converted ImageNet file, or null (random initialisation).
    ``flow_backbone`` is the flow stream's backbone (null: ``backbone``) and ``flow_weights`` its
    ImageNet weights (null: ``weights`` when it is ``imagenet`` or the two backbones are the same); both
    may name ``{backbone}`` and ``{flow_backbone}`` (e.g. ``weights/{backbone}.weights.h5``); ``fusion`` joins the two
    streams: ``features`` (their features concatenated, a new classifier: EgoRCNN's joint model),
    ``logits`` (the mean of the two streams' logits, ego-rnn's late fusion in ``eval-run-twoStream.py``)
    or ``scores`` (the mean of the two streams' softmax); neither adds a layer. ``init_from`` (a run folder or
    ``.keras`` file, or a list of them) starts the run from those models' streams
    (``kerasflow.training.init_from``); ``init_streams`` takes only the streams it names.
    ``flow_network`` is the representation-flow stream's network: ``per_frame`` (the seed paper's) or
    ``inflated_3d`` (the representation-flow code's network: the backbone in 3-D;
    ``kerasflow.models.flow_networks``).
    """

    _renamed = {"num_flow_layers": "flow.num_layers", "flow_iterations": "flow.iterations",
                "flow_position": "flow.position", "flow_bottleneck": "flow.bottleneck"}

    kind: str = option(choices=kind_names, doc="which streams, stages and inputs (see Model kinds below)")
    backbone: str = option(DEFAULT_PRESET, choices=preset_names,
                           doc="the backbone preset of the RGB stream, and of the flow stream unless flow_backbone "
                               "is set (see Backbone presets below)")
    flow_backbone: Optional[str] = option(None, choices=preset_names,
                                          doc="the flow stream's own backbone (null: model.backbone)")
    weights: Optional[str] = option(None, path=True, words=(IMAGENET,),
                                    doc="imagenet (the backbone's ImageNet weights, fetched and cached on first "
                                        "use), a converted ImageNet .weights.h5 (may name {backbone} and "
                                        "{flow_backbone}, e.g. weights/{backbone}.weights.h5), or null for random "
                                        "initialisation")
    flow_weights: Optional[str] = option(None, path=True, words=(IMAGENET,),
                                         doc="the flow stream's ImageNet weights, as model.weights (null: "
                                             "model.weights when it is imagenet or the two backbones are the same)")
    flow: FlowConfig = option(FlowConfig(), doc="the representation-flow block (model.flow below)")
    flow_network: str = option("per_frame", choices=flow_network_names,
                               doc="the representation-flow stream's network (see Flow networks below); inflated_3d "
                                   "needs longer clips: the schema names the fewest frames")
    fusion: str = option("features", choices=FUSIONS,
                         doc="how two streams are joined: features (concatenated features, a new classifier: "
                             "EgoRCNN's joint model), logits (the mean of the two streams' logits: ego-rnn's late "
                             "fusion) or scores (the mean of their softmax)")
    rgb_dropout: float = option(0.7, minimum=0.0, below=1.0, doc="dropout before the RGB stream's classifier")
    flow_dropout: float = option(0.5, minimum=0.0, below=1.0, doc="dropout before the flow stream's classifier")
    fusion_dropout: float = option(0.5, minimum=0.0, below=1.0, doc="dropout before the fusion classifier")
    convlstm_units: int = option(512, minimum=1, doc="channels of the RGB stream's ConvLSTM")
    num_head_classes: int = option(1000, minimum=1,
                                   doc="classes of the ImageNet head whose class activation map gives the RGB "
                                       "stream's attention")
    init_from: Optional[Union[list[str], str]] = option(None, path=True,
                                                        doc="start from other runs' models: a run folder or .keras "
                                                            "file, or a list of them, each stream from the first "
                                                            "that has one (docs/training.md)")
    init_streams: Optional[list[str]] = option(None, choices=STREAMS,
                                               doc="the streams to take from model.init_from, e.g. [rgb] (null: "
                                                   "every stream the kind has)")

    @staticmethod
    def _finish(values, key, checker):
        if values["flow_backbone"] is None:
            values["flow_backbone"] = values["backbone"]
        for name in ("weights", "flow_weights"):
            values[name] = _fill_backbone_names(values[name], values, join_key(key, name), checker)
        _check_imagenet_backbones(values, key, checker)
        _finish_init_from(values, key, checker)

    def stream_weights(self, stream):
        """``(backbone preset, ImageNet weights)`` of ``stream`` (``rgb`` or ``flow``)."""
        if stream == "rgb":
            return self.backbone, self.weights
        return self.flow_backbone, flow_stream_weights(self.backbone, self.flow_backbone, self.weights,
                                                       self.flow_weights)


def _check_imagenet_backbones(values, key, checker):
    """Refuse ``imagenet`` weights for a stream whose backbone has none (``tiny``)."""
    streams = get_kind(values["kind"]).streams
    flow_weights = flow_stream_weights(values["backbone"], values["flow_backbone"], values["weights"],
                                       values["flow_weights"])
    for stream, name, backbone, weights in (("rgb", "weights", values["backbone"], values["weights"]),
                                            ("flow", "flow_weights", values["flow_backbone"], flow_weights)):
        if stream in streams and weights == IMAGENET and imagenet_checkpoint(backbone) is None:
            named = name if values[name] == IMAGENET else "weights"
            checker.fail(f"{join_key(key, named)} = imagenet: backbone preset {backbone!r} has no ImageNet weights; "
                         f"set {join_key(key, named)} to null (random initialisation) "
                         "or to a converted .weights.h5 file")


def _fill_backbone_names(path, model_values, key, checker):
    """``path`` (``model.weights`` or ``model.flow_weights``) with ``{backbone}`` and ``{flow_backbone}``
    filled in: one recipe names the ImageNet file of whichever backbone it is given (a search's factor)."""
    if path is None or "{" not in path:
        return path
    try:
        return path.format(backbone=model_values["backbone"], flow_backbone=model_values["flow_backbone"])
    except (KeyError, IndexError, ValueError):
        checker.invalid(key, path, "a path whose {...} fields are {backbone}, {flow_backbone}")


def _finish_init_from(values, key, checker):
    """``init_from`` as a tuple of paths; ``init_streams`` as a tuple of the kind's streams, only with ``init_from``."""
    init_from, streams = values["init_from"], values["init_streams"]
    if init_from == []:
        checker.invalid(join_key(key, "init_from"), init_from, "a run folder or .keras model file, a list of them, "
                                                                  "or null")
    if init_from is not None:
        values["init_from"] = (init_from,) if isinstance(init_from, str) else tuple(init_from)
    if streams is None:
        return
    if init_from is None:
        checker.fail(f"{join_key(key, 'init_streams')} is only read with {join_key(key, 'init_from')}; "
                     "remove it, or set the run to start from")
    kind_streams = get_kind(values["kind"]).streams
    if not streams or len(set(streams)) < len(streams) or not set(streams) <= set(kind_streams):
        checker.invalid(join_key(key, "init_streams"), streams,
                        f"a list of the streams model.kind {values['kind']} has, each once: {', '.join(kind_streams)}")
    values["init_streams"] = tuple(streams)


@dataclass(frozen=True)
class TrainingConfig:
    """Which model a stage, and so the run, keeps: ``best`` (the epoch with the best validation accuracy,
    as ego-rnn keeps it) or ``last`` (the last epoch, as the representation-flow code's
    ``train_model.py``, which overwrites one checkpoint every epoch)."""

    keep: str = option(
        "best", choices=KEEPS,
        doc="the run's model: the last stage's best epoch on validation (as ego-rnn keeps it) or its last (as the "
            "representation-flow code's train_model.py); a stage always hands its last epoch to the next")


@dataclass(frozen=True)
class ScheduleConfig:
    """Per-epoch learning-rate schedule: ``multistep`` (x gamma at each milestone epoch),
    ``exponential`` (x gamma every epoch) or ``constant``."""

    type: str = option(choices=SCHEDULES,
                       doc="multistep (x gamma at each milestone epoch), exponential (x gamma every epoch) or "
                           "constant")
    milestones: Optional[list[int]] = option(None, minimum=1,
                                             doc="multistep only: the increasing epochs at which the rate is "
                                                 "multiplied by gamma")
    gamma: Optional[float] = option(None, above=0.0, maximum=1.0,
                                    doc="the factor (multistep: 0.1 when left out; exponential: required)")

    def factor(self, epoch: int) -> float:
        """Multiplier of the base learning rate in 0-based ``epoch``.

        ``multistep``: gamma ** (number of milestones <= epoch), i.e. PyTorch ``MultiStepLR`` as
        EgoRCNN steps it; ``exponential``: gamma ** epoch; ``constant``: 1.
        """
        if self.type == "multistep":
            return self.gamma ** sum(1 for milestone in self.milestones if milestone <= epoch)
        if self.type == "exponential":
            return self.gamma ** epoch
        return 1.0

    @staticmethod
    def _finish(values, key, checker):
        kind, milestones, gamma = values["type"], values["milestones"], values["gamma"]
        if kind == "multistep":
            if not milestones:
                checker.fail(f"missing required key {join_key(key, 'milestones')} "
                             "(a list of increasing epochs, e.g. [25, 75, 150]) for type: multistep")
            if any(later <= earlier for earlier, later in zip(milestones, milestones[1:])):
                checker.invalid(join_key(key, "milestones"), milestones, "strictly increasing epochs")
            if gamma is None:
                values["gamma"] = DEFAULT_MULTISTEP_GAMMA
            return
        if milestones is not None:
            checker.fail(f"{join_key(key, 'milestones')} is only read with type: multistep "
                         f"(type is {kind}); remove it")
        if kind == "exponential" and gamma is None:
            checker.fail(f"missing required key {join_key(key, 'gamma')} "
                         "(the per-epoch decay factor, e.g. 0.99) for type: exponential")
        if kind == "constant" and gamma is not None:
            checker.fail(f"{join_key(key, 'gamma')} is not read with type: constant; remove it")


@dataclass(frozen=True)
class StageConfig:
    """One training stage: what it trains is given by ``name``; how, by the other keys.

    ``batch_size`` and ``frames`` are per-stage overrides of ``data.batch_size`` and of the stage's
    frame count (``data.rgb_frames`` for the RGB stages, ``data.flow_frames`` for the
    representation-flow stage). ``flow_learning_rate`` (joint stage only) is the base learning rate of
    the flow stream's fine-tuned layers (EgoRCNN: 1e-4 while the rest uses 1e-2); null = same as
    ``learning_rate``.
    """

    name: str = option(choices=STAGE_ORDER,
                       doc="which stage: rgb_stage1, rgb_stage2 (kinds rgb, two_stream*), flow (all but rgb), joint "
                           "(two_stream*); each at most once; a kind trains its stages in this order and skips the "
                           "others (one line says which)")
    epochs: int = option(minimum=1, doc="epochs the stage trains")
    optimizer: str = option(choices=OPTIMIZERS,
                            doc="adam or sgd, with torch.optim's updates (kerasflow.training.optimizers)")
    learning_rate: float = option(above=0.0, doc="the stage's base learning rate")
    weight_decay: float = option(0.0, minimum=0.0,
                                 doc="L2 weight decay as PyTorch's (added to the gradient), not Keras' decoupled "
                                     "decay")
    momentum: Optional[float] = option(None, minimum=0.0, below=1.0, doc="sgd only (0.0 when left out)")
    epsilon: Optional[float] = option(None, above=0.0, doc="adam only (1e-7 when left out)")
    schedule: ScheduleConfig = option(ScheduleConfig("constant"),
                                      doc="the per-epoch learning-rate schedule (stages[].schedule below)")
    batch_size: Optional[int] = option(None, minimum=1, doc="this stage's batch size (null: data.batch_size)")
    frames: Optional[int] = option(None, minimum=1,
                                   doc="this stage's frames per video (null: data.rgb_frames for the RGB stages, "
                                       "data.flow_frames for the flow stage)")
    flow_learning_rate: Optional[float] = option(None, above=0.0,
                                                 doc="joint stage only: the learning rate of the flow stream's "
                                                     "fine-tuned layers (EgoRCNN: 1e-4 while the rest uses 1e-2; "
                                                     "null: learning_rate)")

    def learning_rate_at(self, epoch: int) -> float:
        """Learning rate in 0-based ``epoch``: ``learning_rate * schedule.factor(epoch)``."""
        return self.learning_rate * self.schedule.factor(epoch)

    @staticmethod
    def _finish(values, key, checker):
        optimizer = values["optimizer"]
        for name, owner, default in (("momentum", "sgd", DEFAULT_SGD_MOMENTUM),
                                     ("epsilon", "adam", DEFAULT_ADAM_EPSILON)):
            if optimizer == owner and values[name] is None:
                values[name] = default
            elif optimizer != owner and values[name] is not None:
                checker.fail(f"{join_key(key, name)} is only read with optimizer: {owner} "
                             f"(optimizer is {optimizer}); remove it")
        if values["name"] == "joint" and values["frames"] is not None:
            checker.fail(f"{join_key(key, 'frames')} is not read by the joint stage; "
                         "set data.rgb_frames and data.flow_frames instead")
        if values["name"] != "joint" and values["flow_learning_rate"] is not None:
            checker.fail(f"{join_key(key, 'flow_learning_rate')} is only read by the joint stage "
                         f"(this stage is {values['name']}); remove it")


@dataclass(frozen=True)
class RuntimeConfig:
    """Where the run folder goes and how training is executed.

    ``output_dir`` may name recipe values in braces, filled in when the recipe is loaded:
    ``{dataset}``, ``{split}``, ``{kind}``, ``{backbone}`` (e.g. ``runs/egtea-split{split}``).
    ``mixed_precision``: false, ``float16`` (or true: Keras' ``mixed_float16``) or ``bfloat16``
    (``mixed_bfloat16``: for CPUs with bfloat16 instructions, TPUs and recent GPUs).
    ``jit_compile``: whether fit, evaluate and predict run the model through XLA: true, false, or
    ``auto`` (the default): on TensorFlow XLA where a GPU or TPU is, not on a CPU; on JAX always (jit); on
    torch never (``kerasflow.training.runtime_setup.use_xla``).
    """

    output_dir: str = option(path=True,
                             doc="the run folder; may name {dataset}, {split}, {kind}, {backbone}, e.g. "
                                 "runs/egtea-split{split}")
    seed: int = option(0, minimum=0,
                       doc="seed of initialisation, shuffling and augmentation; the data and the test set do not "
                           "depend on it")
    distribution: str = option("none", choices=DISTRIBUTIONS,
                               doc="none, mirrored (tf.distribute over all local GPUs or CPU devices) or "
                                   "multi_worker_mirrored (the cluster in TF_CONFIG); TensorFlow backend only")
    mixed_precision: bool | str = option(False, choices=PRECISIONS,
                                         doc="float16 (or true) for mixed_float16, bfloat16 for mixed_bfloat16, "
                                             "false for float32")
    jit_compile: bool | str = option("auto", choices=JIT_COMPILE,
                                     doc="XLA for fit, evaluate and predict: true, false, or auto (TensorFlow: XLA "
                                         "with a GPU or TPU, not on a CPU; JAX: always; torch: never)")


@dataclass(frozen=True)
class EvaluationConfig:
    """How models are tested (fit's test metrics and ``evaluate``'s and ``predict``'s default).

    ``clips``: clips per video: evenly spaced windows for a contiguous flow clip, flow stacks for the
    TV-L1 stream (ego-rnn tests its flow stream on 5); 1 by default. ``average``: how a video's clips are
    averaged: ``logits`` (their mean, as ego-rnn's ``eval-run-flow.py``) or ``softmax`` (the mean of
    their probabilities).
    """

    clips: int = option(1, minimum=1,
                        doc="clips per test video: evenly spaced flow windows, or TV-L1 stacks (ego-rnn tests its "
                            "flow stream on 5)")
    average: str = option("logits", choices=AVERAGES,
                          doc="how a video's clips are averaged by fit's test, evaluate and predict --clips "
                              "(predict --average): logits (their mean, as ego-rnn's eval-run-flow.py) or softmax "
                              "(the mean probability)")


@dataclass(frozen=True)
class Recipe:
    """A checked training recipe. Build it with ``load_recipe`` or ``recipe_from_dict``."""

    data: DataConfig = option(doc="which videos, how they are sampled and cropped, batch size, validation")
    model: ModelConfig = option(doc="which network")
    stages: list[StageConfig] = option(doc="the training stages, each with its optimizer and learning-rate schedule")
    runtime: RuntimeConfig = option(doc="the run folder, seed, distribution, precision, XLA")
    training: TrainingConfig = option(TrainingConfig(), doc="which epoch's model the run keeps")
    evaluation: EvaluationConfig = option(EvaluationConfig(), doc="how models are tested")
    search: Optional[SearchConfig] = option(None, doc="what python -m kerasflow.tune varies (fit ignores the section)")

    @property
    def kind(self):
        """The ``ModelKind`` of ``model.kind``."""
        return get_kind(self.model.kind)

    @property
    def trained_stages(self):
        """The stages the model kind runs, in its order (the recipe may list more)."""
        return [self.stage(name) for name in self.kind.stages]

    @property
    def skipped_stages(self):
        """Names of the recipe's stages that its model kind does not run."""
        return [stage.name for stage in self.stages if stage.name not in self.kind.stages]

    def stage(self, name: str) -> StageConfig:
        """The stage called ``name``; ``KeyError`` when this recipe has none."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    def batch_size_for(self, stage: StageConfig) -> int:
        """The stage's batch size: its own ``batch_size`` or ``data.batch_size``."""
        return stage.batch_size if stage.batch_size is not None else self.data.batch_size

    def frames_for(self, stage: StageConfig) -> tuple[int, int]:
        """``(rgb_frames, flow_frames)`` that ``stage`` samples per video, overrides applied."""
        rgb, flow = self.data.rgb_frames, self.data.flow_frames
        if stage.frames is not None and stage.name in ("rgb_stage1", "rgb_stage2"):
            rgb = stage.frames
        elif stage.frames is not None and stage.name == "flow":
            flow = stage.frames
        return rgb, flow

    def inputs_for(self, stage_name: str) -> list[InputSpec]:
        """The inputs of the model ``stage_name`` trains, as the pipelines sample them for it."""
        return self.kind.input_specs(self, stage_name)

    @staticmethod
    def _finish(values, key, checker):
        data, model, stages = values["data"], values["model"], values["stages"]
        kind = get_kind(model.kind)
        _check_stage_names(kind, [stage.name for stage in stages], checker)
        values["runtime"] = _fill_output_dir(values["runtime"], data, model, checker)
        recipe = Recipe(**values)
        kind.check_recipe(recipe, checker)
        if data.synthetic is not None:
            longest = max(max(recipe.frames_for(stage)) for stage in recipe.trained_stages)
            if data.synthetic.frames < longest:
                checker.invalid("data.synthetic.frames", data.synthetic.frames,
                                f"at least {longest}, the most frames a stage samples per video")


def _check_stage_names(kind, names, checker):
    """Each stage at most once; every stage the kind runs present (others are skipped, with a note)."""
    repeated = sorted({name for name in names if names.count(name) > 1})
    missing = [name for name in kind.stages if name not in names]
    if repeated or missing:
        problem = f"repeated: {', '.join(repeated)}" if repeated else f"missing {', '.join(missing)}"
        checker.fail(f"stages: model.kind {kind.name} trains {', '.join(kind.stages)}; "
                     f"got {', '.join(names) or 'no stages'} ({problem})")


def _fill_output_dir(runtime, data, model, checker):
    """``runtime`` with the ``{dataset}``-style fields of ``output_dir`` filled in."""
    values = {"dataset": data.dataset, "split": data.split, "kind": model.kind, "backbone": model.backbone}
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(runtime.output_dir) if name is not None]
    except ValueError:
        names = ["{"]
    unknown = [name for name in names if name not in OUTPUT_DIR_FIELDS]
    if unknown:
        checker.invalid("runtime.output_dir", runtime.output_dir,
                        "a path whose {...} fields are " + ", ".join("{" + f + "}" for f in OUTPUT_DIR_FIELDS))
    if not names:
        return runtime
    return dataclasses.replace(runtime, output_dir=runtime.output_dir.format(**values))
