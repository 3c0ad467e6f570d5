import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tempfile

# The data check's cache of video probes goes to a folder of the test session, never the user's cache.
os.environ.setdefault("KERASFLOW_CACHE_DIR", tempfile.mkdtemp(prefix="kerasflow-test-cache-"))
# ImageNet weights (model.weights: imagenet) are cached in a folder of the test session too.
os.environ.setdefault("KERASFLOW_HOME", tempfile.mkdtemp(prefix="kerasflow-test-home-"))

import pytest  # noqa: E402

# Module fixtures that train models before their first test runs (about a minute each on 2 cores): every
# test that uses one is ``large`` (setup.cfg), so ``pytest -m "not large"`` never waits for them.
TRAINING_FIXTURES = {"tiny_run", "finished_run", "runs", "sources", "killed_and_resumed"}


def pytest_itemcollected(item):
    if TRAINING_FIXTURES & set(item.fixturenames):
        item.add_marker(pytest.mark.large)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One finished tiny two-stream run (``cli_testing.tiny_overrides``) shared by the tests of a worker.
    Tests read it; those that write put their output under their own ``tmp_path``."""
    from cli_testing import train_tiny_run

    return train_tiny_run(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_held_out(tiny_run):
    """The tiny run's test videos (a ``VideoIndex``)."""
    from kerasflow.data.datasets import build_index

    return build_index("folder", tiny_run.parent / "data", subset="test")
