"""The data of a recipe, as fit, evaluate and predict feed it to a model.

``recipe_indexes`` makes (if the dataset has a prepare step) and indexes a recipe's train and test
subsets, ``validation_split`` holds out the clips that pick checkpoints; ``model_dataset`` is the
``tf.data`` pipeline that feeds a model its inputs (``InputSpec``s, as a saved model's ``ModelInfo``
lists them); ``video_inputs`` decodes one video for prediction exactly as the test subset is decoded.
"""

from kerasflow.data.datasets import AUTO, HELD_OUT, HOLD_OUT_MIN_CLIPS, build_index, get_dataset
from kerasflow.data.indexes import VideoItem, hold_out
from kerasflow.errors import UserError


def recipe_indexes(data):
    """The train and test ``VideoIndex`` of the recipe's ``data`` section.

    Neither depends on ``runtime.seed``: runs with different seeds see the same data and test set.
    """
    spec = get_dataset(data.dataset)
    if spec.prepare is not None:
        spec.prepare(data)
    train, test = (build_index(data.dataset, data.root, data.split, subset, data.flow_root)
                   for subset in ("train", "test"))
    if train.class_names != test.class_names:
        raise UserError(f"{data.root}: the train and test subsets list different classes; check the split files")
    if len(train.class_names) < 2:
        raise UserError(f"{data.root} holds {len(train.class_names)} class ({', '.join(train.class_names)}): a "
                        "classifier needs at least 2; add class folders or fix data.root")
    return train, test


def validation_split(data, train, test):
    """``(train, validation)`` as ``data.validation`` says: the test subset itself (``"test"``, ego-rnn's
    choice for the paper's datasets), a class-balanced hold-out of the training clips (a fraction or a
    list file), or ``"auto"``: a ``HELD_OUT`` hold-out when every class has ``HOLD_OUT_MIN_CLIPS`` training
    clips, else the test subset (``auto_validation_note`` says why)."""
    if data.validation == AUTO:
        return (train, test) if auto_validation_note(train) else hold_out(train, HELD_OUT, data.root)
    if data.validation == "test":
        return train, test
    return hold_out(train, data.validation, data.root)


def auto_validation_note(train):
    """Why ``data.validation: auto`` validates on the test subset (one line), or None when it holds out."""
    counts = train.class_counts()
    fewest = int(counts.min())
    if fewest >= HOLD_OUT_MIN_CLIPS:
        return None
    return (f"data.validation auto: the test subset picks the best checkpoint, as the class "
            f"{train.class_names[int(counts.argmin())]} has {fewest} training clips (a {HELD_OUT:.0%} hold-out needs "
            f"{HOLD_OUT_MIN_CLIPS} per class); set data.validation to a fraction or a list file to hold out anyway")


def test_clips(inputs, clips):
    """How many test clips per video ``clips`` means for a model's ``inputs``: 1 when every input is a
    segment-sampled clip (all its test clips would be the same clip)."""
    return 1 if all(spec.is_clip and spec.sampling == "segments" for spec in inputs) else clips


def model_dataset(data, index, subset, inputs, *, batch_size, training, seed, bad_videos, clips=1):
    """The ``(inputs, label, weight)`` batches of ``index`` (the recipe's ``subset``) for a model's ``inputs``.

    With ``data.packed``, a model that takes one clip reads it from the packed TFRecords; every other
    model decodes the videos (``make_dataset``). ``clips`` > 1: that many test clips per video
    (``make_dataset``); a model whose inputs are all segment-sampled clips has one test clip.
    """
    from kerasflow.data.pipeline import make_dataset
    from kerasflow.data.tfrecord import make_tfrecord_dataset, read_sidecar

    clips = test_clips(inputs, clips)
    common = dict(batch_size=batch_size, training=training, seed=seed, random_flip=data.random_flip)
    if data.packed is not None and len(inputs) == 1 and inputs[0].is_clip and clips == 1:
        path = data.packed.train if subset == "train" else data.packed.test
        if read_sidecar(path).get("class_names") != index.class_names:
            raise UserError(f"{path} was packed with other classes than {data.root} holds; pack it again")
        return make_tfrecord_dataset(path, inputs[0], **common)
    return make_dataset(index, inputs, on_bad_video=data.on_bad_video, bad_videos=bad_videos, clips=clips,
                        colour_jitter=data.colour_jitter, **common)


def video_inputs(video, inputs, flow_dir=None, clips=1):
    """``(model inputs, display)`` of one video, decoded as the test subset is (``load_example``).

    ``inputs`` are the model's ``InputSpec``s; the result maps their names to uint8 batches of one
    (with ``clips`` > 1, of ``clips`` clips: ``(1, clips, ...)``). ``display`` is the uint8 RGB
    clip ``(T, S, S, 3)`` of the first clip input, for pictures (None without one). ``flow_dir`` is the
    video's ``flow_x`` folder, for a TV-L1 stack input. Raises ``BadVideo`` when the video (or its flow)
    cannot be used.
    """
    from kerasflow.data.pipeline import load_example

    arrays = load_example(VideoItem(str(video), 0, flow_dir), inputs, training=False, seed=0, clips=clips)
    display = next((array if clips == 1 else array[0] for spec, array in zip(inputs, arrays) if spec.is_clip), None)
    return {spec.name: array[None] for spec, array in zip(inputs, arrays)}, display
