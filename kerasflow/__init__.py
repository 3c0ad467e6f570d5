"""kerasflow: two-stream video action recognition with learnable representation flow (Keras 3).

From Python: ``load_recipe``, ``fit``, ``build_model``, ``load_model``, ``predict_video`` and
``report_runs`` (``kerasflow.api``). They load on first use, so ``import kerasflow`` does not start TensorFlow.
"""

__version__ = "0.2.0"

from kerasflow._lazy import lazy_attributes  # noqa: E402

__all__ = ["build_model", "fit", "load_model", "load_recipe", "predict_video", "report_runs"]

__getattr__, __dir__ = lazy_attributes(__name__, {name: "kerasflow.api" for name in __all__})
