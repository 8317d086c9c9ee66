"""Driftline data plane: the Open Inference Protocol server, the drift engine and the evaluator sidecar."""
