"""The representation-flow stream learns motion from a few videos it has never seen (issue 21).

A small version of the measurement in docs/motion-learning.md: the demo recipe's flow stage, as the
recipe sets it, on the synthetic 'letters' variant (thin letters drifting 0.5-2 px per frame over a
static texture with sensor noise; one frame says nothing about the class), tested on videos it never
trained on. A change that stops the stream learning motion (it then memorises the training videos'
appearance and tests at chance, 0.25) fails here.
"""

import pytest
from cli_testing import DEMO

from kerasflow.config import load_recipe
from kerasflow.training.trainer import train_recipe

CLASSES, VIDEOS_PER_CLASS, TEST_PER_CLASS = 4, 32, 8  # 24 training and 8 test videos per class


def letters_recipe(folder):
    """The demo recipe's flow stage on the letters variant: 6 flow frames of 64 px, 4 classes."""
    return load_recipe(DEMO, [
        "model.kind=representation_flow", f"data.root={folder}/data", f"runtime.output_dir={folder}/run",
        "data.synthetic.variant=letters", f"data.synthetic.classes={CLASSES}",
        f"data.synthetic.videos_per_class={VIDEOS_PER_CLASS}", "data.synthetic.frames=16",
        "data.synthetic.size=64", "data.flow_frames=6",
    ])


def test_the_learning_test_trains_the_demo_flow_stream_on_the_letters(tmp_path):
    """The fast tier's share of this module: the recipe the learning test trains, without training it."""
    recipe = letters_recipe(tmp_path)
    assert (recipe.model.kind, recipe.data.synthetic.variant) == ("representation_flow", "letters")
    model = recipe.kind.build_models(recipe.model, recipe.data, CLASSES)["flow"]
    assert [tuple(x.shape) for x in model.inputs] == [(None, 6, 64, 64, 3)]
    assert tuple(model.output.shape) == (None, CLASSES)


@pytest.mark.large
def test_flow_stream_learns_the_letters_motion_from_24_videos_per_class(tmp_path):
    recipe = letters_recipe(tmp_path)
    flow = train_recipe(recipe, log=lambda *_: None)["stages"]["flow"]
    assert flow["num_videos"] == CLASSES * TEST_PER_CLASS
    assert flow["top1"] >= 0.6, flow  # the last epoch's model; chance is 0.25
