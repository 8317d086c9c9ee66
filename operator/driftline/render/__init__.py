"""Pure renderers: a resource's spec plus observed state in, desired Kubernetes objects out.

Nothing here talks to the API server; every function returns plain dicts that the
handlers apply with server-side apply.
"""
