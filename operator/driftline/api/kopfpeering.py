"""kopf's peering CRDs (group kopf.dev), which the Helm chart ships beside Driftline's.

With more than one operator replica, kopf's peering keeps one of them working: every
replica writes a keep-alive with its priority into a ClusterKopfPeering (cluster-wide
operator) or a KopfPeering in each watched namespace, and all but the highest pause.
The definitions follow kopf's own peering.yaml: only `status` carries data, as a free
map of replica -> keep-alive. They live in the chart's crds/ rather than its templates
because Helm maps every object of a release before creating any, so a peering object
could not be installed in the same release as a CRD that a template creates.
"""

from __future__ import annotations

from typing import Any

PEERING_GROUP = "kopf.dev"
PEERING_VERSION = "v1"


def _peering_crd(kind: str, plural: str, scope: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{PEERING_GROUP}"},
        "spec": {
            "scope": scope,
            "group": PEERING_GROUP,
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": PEERING_VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "status": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                }
                            },
                        }
                    },
                }
            ],
        },
    }


def peering_crds() -> dict[str, dict[str, Any]]:
    """File name -> CRD, for kopf's two peering kinds."""
    return {
        f"clusterkopfpeerings.{PEERING_GROUP}.yaml": _peering_crd(
            "ClusterKopfPeering", "clusterkopfpeerings", "Cluster"
        ),
        f"kopfpeerings.{PEERING_GROUP}.yaml": _peering_crd(
            "KopfPeering", "kopfpeerings", "Namespaced"
        ),
    }
