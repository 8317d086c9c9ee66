"""The drift sidecar: sampled traffic in, windows evaluated against the reference profile,
verdicts out as metrics, a report page and the DriftPolicy's status."""
