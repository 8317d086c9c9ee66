"""Driftline: serve, roll out and watch ONNX models on Kubernetes."""

__version__ = "0.1.0"
