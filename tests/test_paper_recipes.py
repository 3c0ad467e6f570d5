"""The paper recipes at their paper sizes (25 RGB frames, 16 contiguous flow frames, 224 crops,
ResNet-34): each loads with its dataset's own layout and trains one joint step with batch 2."""

import cv2
import numpy as np
import pytest

from kerasflow.config import load_recipe
from kerasflow.data.feeds import model_dataset, recipe_indexes
from kerasflow.data.pipeline import BadVideoLog
from kerasflow.data.synthetic import write_video
from kerasflow.training.trainer import _compile

FRAMES = 36  # at least the flow clip's window: 16 frames at stride 2 span 31


def _clip(seed):
    rng = np.random.default_rng(seed)
    texture = cv2.GaussianBlur(rng.random((240, 360)).astype(np.float32), (0, 0), 4)
    texture = (255 * (texture - texture.min()) / np.ptp(texture)).astype(np.uint8)
    return np.stack([np.repeat(texture[:, t : t + 320, None], 3, axis=2) for t in range(FRAMES)])


def _gtea61(root):
    for subject in ("S1", "S2", "S3", "S4"):
        for label, name in enumerate(("open_jam", "take_bread")):
            folder = root / "frames" / subject / name / "1"
            folder.mkdir(parents=True)
            for number, frame in enumerate(_clip(label * 10 + int(subject[1])), start=1):
                cv2.imwrite(str(folder / f"image_{number:05d}.jpg"), frame)
    return root


def _egtea(root):
    annotations = root / "action_annotation"
    annotations.mkdir(parents=True)
    (annotations / "action_idx.txt").write_text("Take bowl 1\nOpen fridge 2\n")
    lines = {"train": [], "test": []}
    (root / "cropped_clips" / "P01-R01-PastaSalad").mkdir(parents=True)
    for number in range(6):
        clip = f"P01-R01-PastaSalad-{1000 + number}-{2000 + number}-F000001-F000036"
        write_video(root / "cropped_clips" / "P01-R01-PastaSalad" / f"{clip}.mp4", _clip(number))
        lines["test" if number >= 4 else "train"].append(f"{clip} {number % 2 + 1} 1 1")
    for subset, entries in lines.items():
        (annotations / f"{subset}_split1.txt").write_text("\n".join(entries) + "\n")
    return root


def _hmdb51(root):
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    for label, name in enumerate(("brush_hair", "cartwheel")):
        (root / name).mkdir()
        entries = []
        for number in range(3):
            video = f"clip_{name}_u_nm_np1_fr_med_{number}.avi"
            write_video(root / name / video, _clip(label * 10 + number))
            entries.append(f"{video} {2 if number == 2 else 1}")
        (splits / f"{name}_test_split1.txt").write_text("\n".join(entries) + "\n")
    return root


PAPER_RECIPES = [("gtea61", _gtea61), ("egtea", _egtea), ("hmdb51", _hmdb51)]


@pytest.mark.parametrize("name, layout", PAPER_RECIPES)
def test_paper_recipe_reads_its_datasets_layout(name, layout, tmp_path):
    """The fast tier's share of this module: each recipe finds both classes of its layout in both subsets."""
    root = layout(tmp_path / name)
    recipe = load_recipe(name, [f"data.root={root}", "model.weights=null", f"runtime.output_dir={tmp_path / 'run'}"])
    train, test = recipe_indexes(recipe.data)
    assert len(train.class_names) == 2 and train.class_names == test.class_names
    assert {item.label for item in train.items} == {item.label for item in test.items} == {0, 1}


@pytest.mark.large
@pytest.mark.parametrize("name, layout", PAPER_RECIPES)
def test_paper_recipe_trains_a_joint_step_at_paper_size(name, layout, tmp_path):
    root = layout(tmp_path / name)
    recipe = load_recipe(name, [f"data.root={root}", "model.weights=null", f"runtime.output_dir={tmp_path / 'run'}"])
    assert (recipe.data.rgb_frames, recipe.data.flow_frames, recipe.data.frame_size, recipe.model.backbone) == (
        25, 16, 224, "resnet34")
    train, _ = recipe_indexes(recipe.data)
    stage = recipe.stage("joint")
    model = recipe.kind.build_models(recipe.model, recipe.data, len(train.class_names))["joint"]
    recipe.kind.set_trainable(model, stage.name, recipe.model)
    _compile(model, stage, recipe.kind.optimizer_groups(model, stage, recipe.model), recipe.runtime.jit_compile)
    data = model_dataset(recipe.data, train, "train", recipe.inputs_for(stage.name), batch_size=2, training=True,
                         seed=0, bad_videos=BadVideoLog())
    inputs, labels, weights = next(iter(data))
    assert inputs["rgb"].shape == (2, 25, 224, 224, 3) and inputs["flow_clip"].shape == (2, 16, 224, 224, 3)
    before = [variable.numpy().copy() for variable in model.trainable_variables]
    logs = model.train_on_batch(inputs, labels, sample_weight=weights, return_dict=True)
    assert np.isfinite(logs["loss"]) and float(np.sum(weights)) == 2.0
    moved = [np.abs(variable.numpy() - old).max() > 0 for variable, old in zip(model.trainable_variables, before)]
    assert sum(moved) >= len(moved) // 2
