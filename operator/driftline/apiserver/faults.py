"""Fault injection: make chosen requests fail, for reliability tests of the operator."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any, Literal

FaultKind = Literal[400, 403, 404, 409, 410, 422, 429, 500, "timeout"]
FAULT_KINDS: tuple[FaultKind, ...] = (400, 403, 404, 409, 410, 422, 429, 500, "timeout")
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")


@dataclass
class Fault:
    """Which requests fail, how, how often and for how long.

    `resource` is a plural (`deployments`) or plural.group (`modelversions.driftline.io`);
    None in a selector field matches anything. `rate` is a probability per matching request;
    `duration` seconds from when the fault is added, and `times` a count, bound its life.
    """

    kind: FaultKind
    verbs: frozenset[str] | None = None
    resource: str | None = None
    name: str | None = None
    namespace: str | None = None
    rate: float = 1.0
    duration: float | None = None
    times: int | None = None
    hang_seconds: float = 30.0
    started: float = field(default_factory=time.monotonic)
    fired: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, not {self.kind!r}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"rate must be between 0 and 1, not {self.rate}")
        unknown = set(self.verbs or ()) - set(VERBS)
        if unknown:
            raise ValueError(f"unknown verbs {sorted(unknown)}; known verbs are {VERBS}")

    def expired(self, now: float) -> bool:
        over_time = self.duration is not None and now - self.started >= self.duration
        used_up = self.times is not None and self.fired >= self.times
        return over_time or used_up

    def selects(
        self, verb: str, plural: str, group: str, namespace: str | None, name: str | None
    ) -> bool:
        resource_ok = self.resource is None or self.resource in (
            plural,
            f"{plural}.{group}" if group else plural,
        )
        return (
            (self.verbs is None or verb in self.verbs)
            and resource_ok
            and (self.name is None or self.name == name)
            and (self.namespace is None or self.namespace == namespace)
        )


def fault_status(kind: FaultKind) -> tuple[int, dict[str, Any]]:
    """The HTTP status and Status body of an injected failure, as a real API server words them."""
    bodies: dict[Any, tuple[str, str]] = {
        400: (
            "BadRequest",
            "the server rejected our request for an unknown reason (injected fault)",
        ),
        403: (
            "Forbidden",
            "the client is not allowed to perform this request on the resource (injected fault)",
        ),
        404: ("NotFound", "the server could not find the requested resource (injected fault)"),
        409: (
            "Conflict",
            "Operation cannot be fulfilled: the object has been modified; please apply your changes to the latest version and try again (injected fault)",
        ),
        410: ("Expired", "too old resource version (injected fault)"),
        422: ("Invalid", "the request is invalid (injected fault)"),
        429: ("TooManyRequests", "Too many requests, please try again later. (injected fault)"),
        500: ("InternalError", "Internal error occurred: injected fault"),
        "timeout": (
            "Timeout",
            "Timeout: request did not complete within the allotted timeout (injected fault)",
        ),
    }
    code = 504 if kind == "timeout" else int(kind)
    reason, message = bodies[kind]
    details: dict[str, Any] = {"retryAfterSeconds": 1} if kind in (429, "timeout") else {}
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return code, body


class FaultInjector:
    def __init__(self, seed: int | None = None) -> None:
        self._faults: list[Fault] = []
        self._random = random.Random(seed)

    def add(self, fault: Fault) -> Fault:
        self._faults.append(fault)
        return fault

    def inject(self, kind: FaultKind, **selector: Any) -> Fault:
        return self.add(Fault(kind, **selector))

    def remove(self, fault: Fault) -> None:
        if fault in self._faults:
            self._faults.remove(fault)

    def clear(self) -> None:
        self._faults.clear()

    def selects_by_name(self) -> bool:
        """Whether any fault is aimed at one object by name."""
        return any(fault.name is not None for fault in self._faults)

    def pick(
        self, verb: str, plural: str, group: str, namespace: str | None, name: str | None
    ) -> Fault | None:
        """The fault this request hits, if any (counting it as fired)."""
        if not self._faults:
            return None
        now = time.monotonic()
        self._faults = [f for f in self._faults if not f.expired(now)]
        for fault in self._faults:
            if (
                fault.selects(verb, plural, group, namespace, name)
                and self._random.random() < fault.rate
            ):
                fault.fired += 1
                return fault
        return None
