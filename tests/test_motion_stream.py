"""The motion stream as the representation-flow code trains it: contiguous flow clips, the flow
parameters' own optimiser group, a validation hold-out, multi-clip testing."""

import types

import keras
import numpy as np
import pytest
from model_testing import softmax

from kerasflow.config import load_recipe
from kerasflow.data.feeds import auto_validation_note, validation_split
from kerasflow.data.indexes import VideoIndex, VideoItem, hold_out
from kerasflow.data.inputs import InputSpec
from kerasflow.data.pipeline import CropDraw, jitter_colours, load_example
from kerasflow.data.video import clip_indices, window_start
from kerasflow.errors import UserError
from kerasflow.metrics import average_clip_scores
from kerasflow.training.trainer import _optimizer


@pytest.mark.parametrize("count, frames, stride, expected", [
    (40, 16, 2, list(range(4, 36, 2))),  # window of 31 frames, centre start (40 - 31) // 2 = 4
    (31, 16, 2, list(range(0, 31, 2))),  # exactly one window
    (10, 4, 2, [1, 3, 5, 7]),            # window 7, start 3 // 2 = 1
    (5, 4, 2, [0, 2, 4, 4]),             # shorter than the window: the last frame repeats
    (1, 3, 1, [0, 0, 0]),
])
def test_contiguous_test_windows_are_centred_and_padded(count, frames, stride, expected):
    assert clip_indices(count, frames, "contiguous", stride).tolist() == expected


def test_contiguous_training_windows_are_uniform_and_multiclip_tests_evenly_spaced():
    rng = np.random.default_rng(0)
    starts = [int(clip_indices(20, 4, "contiguous", 2, training=True, rng=rng)[0]) for _ in range(400)]
    assert sorted(set(starts)) == list(range(0, 14)) and min(np.bincount(starts)) > 10  # 20 - 7 + 1 starts
    assert [clip_indices(20, 4, "contiguous", 2, clip=k, clips=3)[0] for k in range(3)] == [0, 6, 13]
    assert [window_start(13, clip=k, clips=5) for k in range(5)] == [0, 3, 6, 9, 13]
    # segments ignore the clip number: every test clip of a segment-sampled input is the same
    assert clip_indices(20, 4, "segments", clip=2, clips=3).tolist() == [0, 5, 10, 15]


def _numbered_frames(folder, count):
    """A frame folder whose frame k is uniformly grey k * 10 (the pixel tells which frame was read)."""
    import cv2

    folder.mkdir(parents=True)
    for number in range(count):
        cv2.imwrite(str(folder / f"img_{number + 1:05d}.png"), np.full((16, 16, 3), number * 10, np.uint8))
    return str(folder)


def test_one_video_pass_feeds_the_rgb_clip_and_the_contiguous_flow_clip(tmp_path):
    item = VideoItem(_numbered_frames(tmp_path / "clip", 20), 0)
    specs = [InputSpec("rgb", 4, 16), InputSpec("flow_clip", 3, 16, "contiguous", 2)]
    rgb, flow = load_example(item, specs, training=False, seed=0)
    assert (rgb[:, 0, 0, 0] // 10).tolist() == [0, 5, 10, 15]   # segments over the whole video
    assert (flow[:, 0, 0, 0] // 10).tolist() == [7, 9, 11]      # centre window of 5 frames
    rgb, flow = load_example(item, specs, training=False, seed=0, clips=3)
    assert rgb.shape == (3, 4, 16, 16, 3) and flow.shape == (3, 3, 16, 16, 3)
    assert (flow[:, :, 0, 0, 0] // 10).tolist() == [[0, 2, 4], [7, 9, 11], [15, 17, 19]]


def test_clip_scores_average_their_logits_or_their_softmax():
    # Clip 1 is very sure of class 0, clips 2-3 mildly prefer class 1: the two averages disagree.
    logits = np.array([[[6.0, 0.0], [0.0, 1.0], [0.0, 1.0]]])
    mean_logits = np.array([[2.0, 2.0 / 3.0]])  # ego-rnn's eval-run-flow.py: torch.mean(logits, 0)
    np.testing.assert_allclose(average_clip_scores(logits), mean_logits, rtol=1e-6)
    np.testing.assert_allclose(average_clip_scores(logits, "logits"), mean_logits, rtol=1e-6)
    expected = np.log(softmax(logits).mean(axis=1))
    np.testing.assert_allclose(average_clip_scores(logits, "softmax"), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="average"):
        average_clip_scores(logits, "median")


def _index(names_per_class):
    items = [VideoItem(f"/root/{name}/{clip}", label) for label, (name, count) in enumerate(names_per_class)
             for clip in (f"c{k}.avi" for k in range(count))]
    return VideoIndex(items, [name for name, _ in names_per_class], "folder", "train")


def test_validation_holds_out_a_stable_share_of_every_class(tmp_path):
    train = _index([("a", 20), ("b", 10), ("c", 2)])
    kept, held = hold_out(train, 0.2, "/root")
    assert held.subset == "validation" and len(kept) + len(held) == 32
    counts = held.class_counts().tolist()
    assert all(count >= 1 for count in counts) and 2 <= counts[0] <= 8 and kept.class_counts().min() >= 1
    assert [item.source for item in hold_out(train, 0.2, "/root")[1].items] == [item.source for item in held.items]
    listed = tmp_path / "val.txt"
    listed.write_text("a/c3.avi\nb/c1.avi\n")
    kept, held = hold_out(train, str(listed), "/root")
    assert [item.source for item in held.items] == ["/root/a/c3.avi", "/root/b/c1.avi"] and len(kept) == 30
    listed.write_text("a/c99.avi\n")
    with pytest.raises(UserError, match="names 1 clips that are not training clips of /root"):
        hold_out(train, str(listed), "/root")


def test_the_flow_parameters_train_at_their_own_rate_with_the_stages_decay():
    """One SGD step: theta moves by 0.01 x lr x (its gradient + wd x theta), a convolution by lr x (gradient
    + wd x w): model.flow.weight_decay null gives the group the stage's decay, as the reference's group."""
    recipe = load_recipe("demo", ["model.kind=representation_flow", "model.flow.iterations=2"])
    keras.utils.set_random_seed(0)
    model = recipe.kind.build_models(recipe.model, recipe.data, 4)["flow"]
    stage = types.SimpleNamespace(optimizer="sgd", learning_rate=0.5, momentum=0.0, weight_decay=0.1,
                                  flow_learning_rate=None)
    model.compile(optimizer=_optimizer(stage, recipe.kind.optimizer_groups(model, stage, recipe.model)),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    block = model.get_layer("flow_stream").get_layer("flow_block")
    block.norm.gamma.assign(np.ones(block.norm.gamma.shape, "float32"))  # open the block (gamma starts at 0)
    theta = block.flows[0].theta_weight
    conv = model.get_layer("flow_stream").get_layer("layer4").get_layer("layer4_0_conv1").kernel
    x = {"flow_clip": np.random.default_rng(1).integers(0, 256, (2, 8, 64, 64, 3), dtype=np.uint8)}
    y = np.array([0, 3])
    import tensorflow as tf

    model.get_layer("flow_dropout").rate = 0.0  # the tape and the step must see the same function
    with tf.GradientTape() as tape:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, model(x, training=True))
    theta_grad, conv_grad = tape.gradient(loss, [theta.value, conv.value])
    before = (float(theta.numpy()), conv.numpy().copy())
    model.train_on_batch(x, y)
    assert theta.trainable and abs(float(theta_grad)) > 0
    np.testing.assert_allclose(float(theta.numpy()), before[0] - 0.5 * 0.01 * (float(theta_grad) + 0.1 * before[0]),
                               rtol=1e-3, atol=1e-7)
    np.testing.assert_allclose(conv.numpy(), before[1] - 0.5 * (conv_grad.numpy() + 0.1 * before[1]), rtol=1e-3,
                               atol=1e-6)
    assert not block.flows[0].image_grad_x.trainable and block.flows[0].div_x.trainable  # [0, 1, 1, 1, 1]


def test_auto_validation_holds_out_only_when_every_class_keeps_enough_clips():
    """``data.validation: auto``: 20 % held out when every class has 50 training clips, else the test subset,
    with the one line fit prints saying why."""
    data = types.SimpleNamespace(validation="auto", root="/root")
    test = _index([("a", 5), ("b", 5)])
    kept, held = validation_split(data, _index([("a", 50), ("b", 60)]), test)
    assert held.subset == "validation" and len(kept) + len(held) == 110 and held.class_counts().min() >= 1
    assert auto_validation_note(kept) is not None and auto_validation_note(_index([("a", 50), ("b", 60)])) is None
    small = _index([("a", 50), ("b", 49)])
    assert validation_split(data, small, test) == (small, test)
    assert auto_validation_note(small) == (
        "data.validation auto: the test subset picks the best checkpoint, as the class b has 49 training clips "
        "(a 20% hold-out needs 50 per class); set data.validation to a fraction or a list file to hold out anyway")


def test_colour_jitter_changes_every_frame_alike_and_keeps_the_motion():
    frame = np.random.default_rng(0).integers(0, 256, (6, 6, 3)).astype(np.uint8)
    clip = np.stack([np.roll(frame, t, axis=1) for t in range(3)])  # moving right by 1 px per frame
    assert np.array_equal(jitter_colours(clip, 1.0, 1.0, 1.0), clip)
    darker = jitter_colours(clip, 0.5, 1.0, 1.0)
    np.testing.assert_array_equal(darker, np.floor(clip * 0.5 + 0.5).astype(np.uint8))
    grey = clip.astype(np.float64) @ [0.299, 0.587, 0.114]
    flat = jitter_colours(clip, 1.0, 0.0, 1.0)  # no contrast: every pixel the clip's mean grey
    assert np.all(flat == np.floor(grey.mean() + 0.5))
    washed = jitter_colours(clip, 1.0, 1.0, 0.0)  # no saturation: each pixel its own grey
    np.testing.assert_array_equal(washed, np.repeat(np.floor(grey + 0.5)[..., None], 3, axis=-1).astype(np.uint8))
    jittered = jitter_colours(clip, 1.2, 0.7, 1.3)
    for t in range(3):
        np.testing.assert_array_equal(jittered[t], np.roll(jittered[0], t, axis=1))


def test_colour_jitter_leaves_the_crop_draws_unchanged():
    draws = [vars(CropDraw(np.random.default_rng(3), False, colour_jitter=jitter)) for jitter in (0.0, 0.4)]
    assert draws[0]["colour"] is None and all(0.6 <= factor <= 1.4 for factor in draws[1]["colour"])
    assert {k: v for k, v in draws[1].items() if k != "colour"} == {k: v for k, v in draws[0].items() if k != "colour"}
