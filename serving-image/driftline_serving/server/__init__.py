"""Open Inference Protocol v2 server on onnxruntime, with dynamic batching."""

__version__ = "0.1.0"
