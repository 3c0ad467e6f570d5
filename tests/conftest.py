import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tempfile

# The data check's cache of video probes goes to a folder of the test session, never the user's cache.
os.environ.setdefault("KERASFLOW_CACHE_DIR", tempfile.mkdtemp(prefix="kerasflow-test-cache-"))
