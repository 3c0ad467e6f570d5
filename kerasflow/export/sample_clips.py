"""The clips an export is checked on (the recipe's first test videos) and int8 calibrates on (training videos)."""

CHECK_CLIPS = 8  # test clips the artifact is compared with the Keras model on
REPRESENTATIVE_CLIPS = 32  # training clips --quantize int8 calibrates on (all of them when there are fewer)


def check_clips(info, recipe, count=CHECK_CLIPS):
    """``(clips, where from)``: ``{input name: uint8 (N, ...)}`` of the recipe's first test videos, or
    random frames when there is no recipe."""
    import numpy as np

    if recipe is None:
        rng = np.random.default_rng(0)
        return {spec.name: rng.integers(0, 256, (count, *spec.shape), dtype=np.uint8) for spec in info.inputs}, \
            f"{count} random clips (no recipe: give the model's recipe to check on test videos)"
    from kerasflow.data.feeds import model_dataset, recipe_indexes
    from kerasflow.data.pipeline import BadVideoLog

    _, test = recipe_indexes(recipe.data)
    dataset = model_dataset(recipe.data, test, "test", info.inputs, batch_size=count, training=False,
                            seed=0, bad_videos=BadVideoLog())
    inputs, _, weights = next(iter(dataset))
    kept = np.asarray(weights) > 0
    return {name: np.asarray(value)[kept] for name, value in inputs.items()}, f"{int(kept.sum())} test clips"


def representative_clips(info, recipe, count=REPRESENTATIVE_CLIPS):
    """``{input name: uint8 (N, ...)}`` of up to ``count`` training videos spread evenly over the recipe's
    training list (each sampled as at test time), the clips ``--quantize int8`` calibrates on."""
    import dataclasses

    import numpy as np

    from kerasflow.data.feeds import model_dataset, recipe_indexes
    from kerasflow.data.pipeline import BadVideoLog

    train, _ = recipe_indexes(recipe.data)
    picked = [train.items[i] for i in np.unique(np.linspace(0, len(train.items) - 1, count).astype(int))]
    dataset = model_dataset(recipe.data, dataclasses.replace(train, items=picked), "train", info.inputs,
                            batch_size=len(picked), training=False, seed=0, bad_videos=BadVideoLog())
    inputs, _, weights = next(iter(dataset))
    kept = np.asarray(weights) > 0
    return {name: np.asarray(value)[kept] for name, value in inputs.items()}
