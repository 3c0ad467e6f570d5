"""The options that reproduce the reference codes where they differ from EgoRCNN's defaults: the
representation-flow code's crops and kept epoch, ego-rnn's late fusion of logits (issue 20)."""


import keras
import numpy as np
import pytest

from kerasflow.config import load_recipe
from kerasflow.data.indexes import VideoItem
from kerasflow.data.inputs import InputSpec
from kerasflow.data.pipeline import CropDraw, load_example, transform_planes
from kerasflow.model_io import save_model, save_weights
from kerasflow.training.run_folder import model_info
from kerasflow.training.trainer import kept_model


def _coded_planes(height, width):
    """uint8 planes whose pixel (y, x) holds (y, x, 0): every crop says where it came from."""
    y, x = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return np.stack([y, x, np.zeros_like(y)], axis=-1).astype(np.uint8)


def test_random_crop_of_the_half_resolution_frame_as_hmdb_dataset_reads_it():
    """hmdb_dataset.py: every second row and column, then a frame_size crop at a random place (training)
    or at the centre (test); no rescaling."""
    planes = _coded_planes(240, 200)  # a 240x200 frame -> 120x100 at half resolution
    test = transform_planes(planes, 64, None, crop="random", subsample=2)
    assert test.shape == (64, 64, 3)
    # The centre crop of the 120x100 half frame: rows 28..91, columns 18..81 of it, 2x that in the frame.
    assert test[0, 0, :2].tolist() == [56, 36] and test[-1, -1, :2].tolist() == [182, 162]
    origins = set()
    for seed in range(40):
        draw = CropDraw(np.random.default_rng(seed), random_flip=False, crop="random")
        crop = transform_planes(planes, 64, draw, crop="random", subsample=2)
        top, left = int(crop[0, 0, 0]) // 2, int(crop[0, 0, 1]) // 2
        assert 0 <= top <= 120 - 64 and 0 <= left <= 100 - 64
        assert top == int(draw.offset[0] * (120 - 64 + 1)) and left == int(draw.offset[1] * (100 - 64 + 1))
        # no rescaling: neighbouring pixels are two frame pixels apart
        assert np.all(np.diff(crop[:, 0, 0].astype(int)) == 2) and np.all(np.diff(crop[0, :, 1].astype(int)) == 2)
        origins.add((top, left))
    assert len(origins) > 30  # the place is drawn anew for each clip


def test_a_frame_smaller_than_the_crop_is_scaled_up_first():
    crop = transform_planes(_coded_planes(40, 60), 64, None, crop="random")
    assert crop.shape == (64, 64, 3)


def test_multiscale_draws_are_unchanged_by_the_random_crop_option():
    """The random crop's offset is drawn last, so EgoRCNN's crops (and the clip sampling after them) keep
    the draws they had."""
    plain = CropDraw(np.random.default_rng(7))
    rng = np.random.default_rng(7)
    assert (plain.flip, plain.scale, plain.position) == (bool(rng.random() < 0.5), int(rng.integers(4)),
                                                        int(rng.integers(5)))
    assert plain.offset is None


def test_clip_inputs_carry_the_crop_to_the_pipeline(tmp_path):
    import cv2

    folder = tmp_path / "clip"
    folder.mkdir()
    for number in range(6):
        cv2.imwrite(str(folder / f"img_{number + 1:05d}.png"), _coded_planes(80, 80)[..., ::-1])
    spec = InputSpec("flow_clip", 3, 32, "contiguous", 1, crop="random", subsample=2)
    (clip,) = load_example(VideoItem(str(folder), 0), [spec], training=False, seed=0)
    assert clip.shape == (3, 32, 32, 3)
    assert clip[0, 0, 0, :2].tolist() == [8, 8]  # the centre 32 of the 40x40 half frame starts at 4 (8 in the frame)
    recipe = load_recipe("hmdb51-repflow", ["data.root=/tmp", "model.weights=null"])
    (flow_input,) = recipe.inputs_for("flow")
    assert (flow_input.crop, flow_input.subsample, flow_input.size) == ("random", 2, 112)


def test_late_fusion_of_logits_is_their_mean():
    """ego-rnn's eval-run-twoStream.py: 0.5 * flow logits + 0.5 * RGB logits, from the streams' own heads."""
    recipe = load_recipe("demo", ["model.fusion=logits", "model.flow.iterations=2", "model.convlstm_units=8",
                                  "data.frame_size=64", "data.rgb_frames=3", "data.flow_frames=4"])
    keras.utils.set_random_seed(0)
    models = recipe.kind.build_models(recipe.model, recipe.data, 3)
    rng = np.random.default_rng(1)
    feed = {"rgb": rng.integers(0, 256, (2, 3, 64, 64, 3), dtype=np.uint8),
            "flow_clip": rng.integers(0, 256, (2, 4, 64, 64, 3), dtype=np.uint8)}
    rgb = np.asarray(models["rgb"]({"rgb": feed["rgb"]}), np.float64)
    flow = np.asarray(models["flow"]({"flow_clip": feed["flow_clip"]}), np.float64)
    np.testing.assert_allclose(np.asarray(models["joint"](feed)), 0.5 * flow + 0.5 * rgb, rtol=1e-5, atol=1e-5)
    assert not any("fusion_classifier" in w.path for w in models["joint"].weights)


@pytest.mark.parametrize("keep", ["best", "last"])
def test_kept_model_is_the_best_epoch_or_the_last(keep, tmp_path):
    recipe = load_recipe("demo", ["model.kind=representation_flow", "model.flow.iterations=1",
                                  "data.frame_size=32", "data.flow_frames=4", "model.backbone=tiny"])
    keras.utils.set_random_seed(0)
    model = recipe.kind.build_models(recipe.model, recipe.data, 2)["flow"]
    best = [w.copy() for w in model.get_weights()]
    save_model(model, str(tmp_path / "best.keras"), model_info(recipe, ["a", "b"], "flow", val_accuracy=0.5))
    model.set_weights([w + 1.0 for w in best])
    save_weights(model, str(tmp_path / "final.weights.h5"))
    kept = kept_model(tmp_path, keep).get_weights()
    want = best if keep == "best" else [w + 1.0 for w in best]
    assert all(np.array_equal(a, b) for a, b in zip(kept, want))


def test_the_repflow_recipe_trains_as_the_reference(tmp_path):
    recipe = load_recipe("hmdb51-repflow", ["data.root=/tmp", "model.weights=null"])
    assert recipe.training.keep == "last"
    assert recipe.model.flow.image_gradient == "reference" and recipe.model.flow.weight_decay is None
    assert (recipe.data.crop, recipe.data.spatial_subsample, recipe.data.random_flip) == ("random", 2, False)
    for name in ("gtea61", "egtea", "hmdb51", "hmdb51-ablation"):
        assert load_recipe(name, ["data.root=/tmp", "model.weights=null"]).evaluation.average == "logits"
