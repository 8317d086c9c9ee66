"""Pure reconciliation decisions: observed objects in, desired status and actions out.

The kopf handlers in driftline.handlers gather the observations, call these functions,
and carry out what they return; nothing here does I/O or reads the clock on its own
(the current time is passed in).
"""
