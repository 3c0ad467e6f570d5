"""The parts of ``python -m kerasflow.benchmark``: test clips (``clips``), an independent PyTorch
representation-flow layer (``torch_flow``), measuring helpers (``measure``) and the report's sections
(``sections``)."""
