"""FrameNormalization: raw frames in, the backbones' normalisation out (known answers)."""

import numpy as np

from kerasflow.layers import FrameNormalization
from kerasflow.layers.preprocessing import FLOW_MEAN, FLOW_STD
from layer_testing import run_layer_test

FRAMES = np.random.default_rng(0).integers(0, 256, (2, 3, 4, 4, 3), dtype=np.uint8)


def test_imagenet_normalisation_of_uint8_frames():
    expected = (FRAMES / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    run_layer_test(FrameNormalization, {}, FRAMES, (2, 3, 4, 4, 3), expected_output=expected, atol=1e-5,
                   mixed_precision_dtype="float16", run_training_check=False)


def test_one_statistic_for_every_flow_plane():
    planes = np.random.default_rng(1).integers(0, 256, (2, 8, 8, 10), dtype=np.uint8)
    expected = (planes / 255.0 - 0.449) / 0.226
    run_layer_test(FrameNormalization, dict(mean=list(FLOW_MEAN), std=list(FLOW_STD)), planes, (2, 8, 8, 10),
                   expected_output=expected, atol=1e-5, mixed_precision_dtype="float16", run_training_check=False)
