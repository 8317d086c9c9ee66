"""Example models: what the local sandbox serves, and what the tests and benchmarks run.

Not used by the server, the sidecar or the verification Job themselves.
"""
