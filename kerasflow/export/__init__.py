"""Deployment: export a trained model to ``.keras``, a SavedModel or TFLite (builtin ops only), each
taking raw uint8 frames, and run any of them the same way (``predictors.load_predictor``).
``python -m kerasflow.export`` is the command."""
