"""A local Kubernetes API with real semantics, on loopback, built on kmock.

kmock provides the HTTP server, discovery documents and its request DSL; this package adds
what a kopf operator and the `kubernetes` client rely on: uid/creationTimestamp/generation
and a cluster-wide resourceVersion, optimistic concurrency, status and scale subresources,
watches from a resourceVersion with bookmarks and 410 Gone, label and field selectors,
finalizers and garbage collection, CRD registration with schema/CEL validation, the patch
types and server-side apply, field validation (fieldValidation Strict/Warn/Ignore), the
OpenAPI documents and content negotiation kubectl relies on, controller stand-ins,
fault injection, and (when asked for) bearer-token authentication with RBAC authorization.

    store.py        objects, resourceVersions and the bounded event history watches read
    cluster.py      what each verb does (independent of HTTP)
    patching.py     merge, JSON, strategic merge patches and server-side apply (pure)
    selectors.py    label and field selectors (pure)
    gc.py           garbage-collection decisions (pure)
    resources.py    built-in resource types and CRD conversion
    discovery.py    the discovery documents (pure)
    openapi.py      /openapi/v2 and /openapi/v3 documents (pure)
    builtin_schemas.py  Kubernetes' own OpenAPI definitions of the built-in kinds
    protobuf.py     reading the protobuf bodies kubectl sends for built-in kinds
    tables.py       the Tables `kubectl get` prints (pure)
    controllers.py  Deployment, Job and Service stand-ins
    faults.py       fault injection
    rbac.py         RBAC decisions and the escalation check (pure)
    tokens.py       the static token file and bearer headers (pure)
    access.py       authentication, authorization and their record, for the server
    server.py       the HTTP shell on kmock
    bootstrap.py    kubeconfigs and CRD preloading
    cli.py          `driftline apiserver`

The pytest fixture and the threaded runner for tests live in tests/apiserver_support.py.
"""

from importlib import import_module
from typing import Any

# Imported on first use: `driftline validate` (a plain install, without the apiserver
# extra) reads the stored built-in schemas from this package without loading the server.
_EXPORTS = {
    "ApiHandler": "driftline.apiserver.server",
    "Cluster": "driftline.apiserver.cluster",
    "Fault": "driftline.apiserver.faults",
    "FaultInjector": "driftline.apiserver.faults",
    "LocalApiServer": "driftline.apiserver.server",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)


__all__ = [
    "ApiHandler",
    "Cluster",
    "Fault",
    "FaultInjector",
    "LocalApiServer",
]
