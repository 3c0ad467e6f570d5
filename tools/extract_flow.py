"""Thin entry point: ``python tools/extract_flow.py ...`` is ``python -m kerasflow.extract_flow ...``
(see that module)."""

from kerasflow.commands import extract_flow

if __name__ == "__main__":
    extract_flow()
