"""kerasflow: two-stream video action recognition with learnable representation flow (Keras 3)."""

__version__ = "0.1.0"
