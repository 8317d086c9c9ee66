"""What every reconcile shares: the API client, settings, and the indexes kopf keeps.

Made once by the startup handler and kept in kopf's memo, never in module state, so
tests can build one around any KubeApi and plain dictionaries as indexes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from driftline.handlers.analysis import Analyst
from driftline.handlers.kube import KubeApi
from driftline.render.settings import RenderSettings


@dataclass(frozen=True, slots=True)
class OperatorSettings:
    # How often a resource that waits on something no watch event announces looks again
    # (a deletion blocked by users, a verification Job of the same name made by someone else).
    blocked_recheck_seconds: float = 10.0
    # How often reports of gone serving pods are looked for in a DriftPolicy's status.
    drift_prune_seconds: float = 30.0
    # Reconciles that may run at once (each blocks a thread on API calls).
    workers: int = 16
    # How often every child of a ModelDeployment is applied again even though its
    # applied-hash says it is current, so that hand edits of our fields are undone.
    resync_seconds: float = 600.0
    # The Prometheus the analysis gates query where a ModelDeployment names none.
    prometheus_url: str | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> OperatorSettings:
        """DRIFTLINE_BLOCKED_RECHECK_SECONDS, DRIFTLINE_DRIFT_PRUNE_SECONDS,
        DRIFTLINE_OPERATOR_WORKERS, DRIFTLINE_RESYNC_SECONDS and DRIFTLINE_PROMETHEUS_URL
        override the defaults (read at start-up)."""
        env = os.environ if environ is None else environ
        defaults = cls()
        return cls(
            blocked_recheck_seconds=float(
                env.get("DRIFTLINE_BLOCKED_RECHECK_SECONDS") or defaults.blocked_recheck_seconds
            ),
            drift_prune_seconds=float(
                env.get("DRIFTLINE_DRIFT_PRUNE_SECONDS") or defaults.drift_prune_seconds
            ),
            workers=int(env.get("DRIFTLINE_OPERATOR_WORKERS") or defaults.workers),
            resync_seconds=float(env.get("DRIFTLINE_RESYNC_SECONDS") or defaults.resync_seconds),
            prometheus_url=env.get("DRIFTLINE_PROMETHEUS_URL") or None,
        )


@dataclass
class Runtime:
    kube: KubeApi
    render: RenderSettings
    settings: OperatorSettings
    # Index name -> {key: values}: kopf's live indexes, or plain dictionaries in tests.
    indexes: Mapping[str, Any]
    # When each DriftPolicy last listed its target's pods (monotonic seconds): only spares
    # API calls; after a restart the first reconcile lists them again.
    pods_listed_at: dict[tuple[str, str], float] = field(default_factory=dict)
    # The resourceVersion of each resource's last write by this operator, until the index
    # shows it: a copy from the index that differs is older than what the API holds, so
    # the reconcile reads the resource itself instead of writing from a stale copy (which
    # the API would refuse with a conflict). Only spares calls; empty after a restart.
    written: dict[tuple[str, str, str], str] = field(default_factory=dict)
    # When each ModelDeployment's children were last all applied (monotonic seconds); only
    # paces the resync: after a restart the first reconcile of each applies everything.
    resynced_at: dict[tuple[str, str], float] = field(default_factory=dict)
    # Per resource, what its dependents last read of it (see handlers.register).
    dependents_saw: dict[tuple[str, ...], Any] = field(default_factory=dict)
    # Takes the analysis gates' measurements (made on first use).
    _analyst: Analyst | None = None

    @property
    def analyst(self) -> Analyst:
        if self._analyst is None:
            self._analyst = Analyst(self.kube, self.settings.prometheus_url)
        return self._analyst

    def indexed_current(self, index: str, kind: str, key: tuple[str, str]) -> dict[str, Any] | None:
        """The indexed body of a resource, or None when it is missing or known to be stale."""
        body: dict[str, Any] | None = self.first(index, key)
        expected = self.written.get((kind, *key))
        if body is None or expected is None:
            return body
        if body.get("metadata", {}).get("resourceVersion") == expected:
            del self.written[(kind, *key)]
            return body
        return None

    def read(
        self, index: str, api_version: str, kind: str, namespace: str, name: str, *, fresh: bool
    ) -> dict[str, Any] | None:
        """The resource a reconcile is about: the index's copy, or the API's own when
        `fresh` (a retry after a conflict) or when the index has not shown our last write."""
        key = (namespace, name)
        body = None if fresh else self.indexed_current(index, kind, key)
        if body is None:
            body = self.kube.get(api_version, kind, namespace, name)
            self.note_read(kind, key, body)
        return body

    def remember_write(self, kind: str, key: tuple[str, str], resource_version: str) -> None:
        self.written[(kind, *key)] = resource_version

    def note_read(self, kind: str, key: tuple[str, str], body: Mapping[str, Any] | None) -> None:
        """A read from the API is the newest copy: wait for the index to show that one."""
        if (kind, *key) not in self.written:
            return
        version = (body or {}).get("metadata", {}).get("resourceVersion")
        if version:
            self.written[(kind, *key)] = str(version)
        else:
            del self.written[(kind, *key)]

    def lookup(self, index: str, key: tuple[str, str]) -> list[Any]:
        """The values an index holds under `key` (a copy: kopf changes them as events come)."""
        found = self.indexes.get(index)
        if found is None:
            return []
        values: Iterable[Any] = found.get(key, [])
        return list(values)

    def first(self, index: str, key: tuple[str, str]) -> Any | None:
        values = self.lookup(index, key)
        return values[0] if values else None
