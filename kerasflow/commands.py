"""The console scripts (``kerasflow-fit``, ``kerasflow-evaluate``, ...): each runs ``python -m kerasflow.<name>``."""

import importlib

from kerasflow.errors import run_command


def _run(module):
    run_command(importlib.import_module(f"kerasflow.{module}").main)


def fit():
    _run("fit_command")


def evaluate():
    _run("evaluate")


def predict():
    _run("predict")


def export():
    _run("export.__main__")


def benchmark():
    _run("benchmark")


def extract_flow():
    _run("extract_flow")


def convert_weights():
    _run("convert_weights")


def report():
    _run("report")


def tune():
    _run("tune")
