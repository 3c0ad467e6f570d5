"""FrameNormalization: raw frames in, the backbones' normalisation out (known answers)."""

import keras
import numpy as np
import pytest
from layer_testing import run_layer_test

from kerasflow.layers import FrameNormalization
from kerasflow.layers.preprocessing import FLOW_MEAN, FLOW_STD

FRAMES = np.random.default_rng(0).integers(0, 256, (2, 3, 4, 4, 3), dtype=np.uint8)
IMAGENET = (FRAMES / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
PLANES = np.random.default_rng(1).integers(0, 256, (2, 8, 8, 10), dtype=np.uint8)
FLOW = (PLANES / 255.0 - 0.449) / 0.226


def test_known_answers():
    """The fast tier's share of this module (the layer contracts below are large)."""
    np.testing.assert_allclose(keras.ops.convert_to_numpy(FrameNormalization()(FRAMES)), IMAGENET, atol=1e-5)
    flow = FrameNormalization(mean=list(FLOW_MEAN), std=list(FLOW_STD))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(flow(PLANES)), FLOW, atol=1e-5)


@pytest.mark.large
def test_imagenet_normalisation_of_uint8_frames():
    run_layer_test(FrameNormalization, {}, FRAMES, (2, 3, 4, 4, 3), expected_output=IMAGENET, atol=1e-5,
                   mixed_precision_dtype="float16", run_training_check=False)


@pytest.mark.large
def test_one_statistic_for_every_flow_plane():
    run_layer_test(FrameNormalization, dict(mean=list(FLOW_MEAN), std=list(FLOW_STD)), PLANES, (2, 8, 8, 10),
                   expected_output=FLOW, atol=1e-5, mixed_precision_dtype="float16", run_training_check=False)
