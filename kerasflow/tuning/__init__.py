"""Searches over recipes (``python -m kerasflow.tune``): the paper's ablations and hyperparameter
searches, with keras-tuner as the engine.

- ``space``: the factors of a recipe's ``search:`` section, each trial's recipe, grid and
  one-at-a-time plans (no TensorFlow);
- ``engine``: keras-tuner's hypermodel, oracles and tuner over recipes, each trial an ordinary run folder;
- ``report``: ``results.csv``, ``results.md``, the plot and ``best.yaml`` of a search folder;
- ``search``: ``run_search``, a whole search, resumable and distributed (keras-tuner's chief and workers).
"""
