"""Automated analysis: the gates that decide each rollout step.

The modules here are pure (no I/O, no clock: time is passed in): templating of PromQL
queries, reduction of a query's result to one number, the gate state machine and its
verdicts, the built-in gates read from the tracks' own /metrics text, and the prediction
divergence test. Providers that fetch data (Prometheus over HTTP, the pods' /metrics) live
in ``driftline.analysis.providers`` at the edge and hand their answers to these functions.
"""
