"""kopf handlers: thin shells that read, call the pure core, apply and write status.

Importing `driftline.handlers.register` registers every handler with kopf.
"""
