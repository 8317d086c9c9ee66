"""Sampled traffic from the model server to the drift sidecar: codec, ring buffer, shipper."""
