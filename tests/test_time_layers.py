"""FoldTime, UnfoldTime and TimeAverage against NumPy reshapes and means."""

import keras
import numpy as np
import pytest
from layer_testing import run_layer_test

from kerasflow.layers import FoldTime, TimeAverage, UnfoldTime

CLIPS = np.random.default_rng(0).random((2, 4, 5, 5, 3)).astype("float32")


@pytest.mark.large
def test_fold_time():
    run_layer_test(FoldTime, {}, CLIPS, (8, 5, 5, 3), expected_output=CLIPS.reshape(8, 5, 5, 3), atol=0)


@pytest.mark.large
def test_unfold_time():
    frames = CLIPS.reshape(8, 5, 5, 3)
    run_layer_test(UnfoldTime, dict(frames=4), frames, (2, 4, 5, 5, 3), expected_output=CLIPS, atol=0)


@pytest.mark.large
def test_time_average():
    run_layer_test(TimeAverage, {}, CLIPS, (2, 5, 5, 3), expected_output=CLIPS.mean(axis=1), atol=1e-6)


def test_fold_then_unfold_is_the_identity():
    folded = FoldTime()(CLIPS)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(UnfoldTime(frames=4)(folded)), CLIPS)
