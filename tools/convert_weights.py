"""Thin entry point: ``python tools/convert_weights.py ...`` is ``python -m kerasflow.convert_weights ...``
(see that module)."""

from kerasflow.commands import convert_weights

if __name__ == "__main__":
    convert_weights()
