"""Thin entry point: ``python tools/benchmark.py ...`` is ``python -m kerasflow.benchmark ...`` (see that module)."""

from kerasflow.commands import benchmark

if __name__ == "__main__":
    benchmark()
