"""FoldTime, UnfoldTime and UniformFrames against NumPy reshapes and EgoRCNN's frame indices."""

import numpy as np
import pytest
import keras

from kerasflow.layers import FoldTime, TimeAverage, UniformFrames, UnfoldTime
from layer_testing import run_layer_test

CLIPS = np.random.default_rng(0).random((2, 4, 5, 5, 3)).astype("float32")


def test_fold_time():
    run_layer_test(FoldTime, {}, CLIPS, (8, 5, 5, 3), expected_output=CLIPS.reshape(8, 5, 5, 3), atol=0)


def test_unfold_time():
    frames = CLIPS.reshape(8, 5, 5, 3)
    run_layer_test(UnfoldTime, dict(frames=4), frames, (2, 4, 5, 5, 3), expected_output=CLIPS, atol=0)


def test_time_average():
    run_layer_test(TimeAverage, {}, CLIPS, (2, 5, 5, 3), expected_output=CLIPS.mean(axis=1), atol=1e-6)


def test_uniform_frames():
    clips = np.random.default_rng(1).random((2, 10, 3, 3, 2)).astype("float32")
    run_layer_test(UniformFrames, dict(frames=4), clips, (2, 4, 3, 3, 2), expected_output=clips[:, [0, 2, 5, 7]], atol=0)


@pytest.mark.parametrize("total,frames", [(4, 4), (7, 3), (10, 4), (25, 5)])
def test_uniform_frames_picks_egornn_indices(total, frames):
    clips = np.random.default_rng(total).random((2, total, 3, 3, 2)).astype("float32")
    indices = np.floor(np.linspace(0, total, frames, endpoint=False)).astype(int)  # EgoRCNN's sampling
    got = keras.ops.convert_to_numpy(UniformFrames(frames=frames)(clips))
    np.testing.assert_array_equal(got, clips[:, indices])


def test_fold_then_unfold_is_the_identity():
    folded = FoldTime()(CLIPS)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(UnfoldTime(frames=4)(folded)), CLIPS)
