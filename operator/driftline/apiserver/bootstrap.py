"""Kubeconfigs for the local API, and preloading CRDs from YAML files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from driftline.apiserver.cluster import Cluster

CONTEXT_NAME = "driftline-local"


def kubeconfig(url: str, namespace: str = "default", token: str | None = None) -> dict[str, Any]:
    """A kubeconfig for kopf, the `kubernetes` client and kubectl (plain HTTP; a bearer
    token when the server authenticates)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT_NAME, "cluster": {"server": url}}],
        "users": [{"name": CONTEXT_NAME, "user": {"token": token} if token else {}}],
        "contexts": [
            {
                "name": CONTEXT_NAME,
                "context": {"cluster": CONTEXT_NAME, "user": CONTEXT_NAME, "namespace": namespace},
            }
        ],
        "current-context": CONTEXT_NAME,
        "preferences": {},
    }


def write_kubeconfig(
    path: Path, url: str, token: str | None = None, namespace: str = "default"
) -> Path:
    """Write atomically (whoever waits for the file never reads half of it); with a token,
    readable by its owner only, as kubeadm writes admin.conf."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if token else 0o644)
    with os.fdopen(descriptor, "w") as file:
        file.write(yaml.safe_dump(kubeconfig(url, namespace, token), sort_keys=False))
    os.replace(partial, path)
    return path


def load_crds(cluster: Cluster, directory: Path) -> list[str]:
    """Create every CustomResourceDefinition found in the YAML files of a directory."""
    crds = cluster.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    names = []
    for path in sorted(directory.glob("*.y*ml")):
        for document in yaml.safe_load_all(path.read_text()):
            if isinstance(document, dict) and document.get("kind") == "CustomResourceDefinition":
                names.append(cluster.create(crds, None, document)["metadata"]["name"])
    return names
