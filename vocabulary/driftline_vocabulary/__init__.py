"""What the control plane (`driftline`) and the data plane (`driftline_serving`) share.

The drift vocabulary that the DriftPolicy resource passes to the engine unchanged
(feature types, test names, corrections, severities and their order), status conditions
as the Kubernetes API conventions shape them, and the DriftPolicy's combined drift
status, which the sidecars write and the operator prunes. Standard library only, so that
either side imports it without pulling in the other's dependencies.
"""
