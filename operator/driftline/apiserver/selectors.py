"""Label and field selectors, parsed and matched as kube-apiserver does (pure functions)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_SET_OPERATION = re.compile(r"^\s*(!?)\s*([^\s!=()]+)\s+(in|notin)\s*\(([^)]*)\)\s*$")
_EQUALITY = re.compile(r"^\s*([^\s!=]+)\s*(==|!=|=)\s*([^\s!=]*)\s*$")
_EXISTENCE = re.compile(r"^\s*(!?)\s*([^\s!=()]+)\s*$")


class SelectorError(ValueError):
    """A selector string that kube-apiserver would reject with 400 Bad Request."""


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "exists":
            return present
        if self.operator == "!exists":
            return not present
        if self.operator in ("=", "in"):
            return present and value in self.values
        # "!=" and "notin" also match objects that lack the label, as in Kubernetes.
        return not present or value not in self.values


Selector = tuple[Requirement, ...]


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside the parentheses of a set operation."""
    parts: list[str] = []
    depth = 0
    current = ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part for part in parts if part.strip()]


def _check_key(key: str, text: str) -> None:
    if not _LABEL_KEY.match(key) or len(key.split("/")[-1]) > 63:
        raise SelectorError(f"unable to parse requirement: invalid label key {key!r} in {text!r}")


def _check_value(value: str, text: str) -> None:
    if not _LABEL_VALUE.match(value) or len(value) > 63:
        raise SelectorError(
            f"unable to parse requirement: invalid label value {value!r} in {text!r}"
        )


def parse_label_selector(text: str | None) -> Selector:
    """Parse `a=b,c!=d,e in (f,g),h notin (i),j,!k`; an empty selector matches everything."""
    if not text or not text.strip():
        return ()
    requirements: list[Requirement] = []
    for part in _split_top_level(text):
        if match := _SET_OPERATION.match(part):
            negated, key, operator, raw_values = match.groups()
            if negated:
                raise SelectorError(f"unable to parse requirement: {part.strip()!r}")
            values = frozenset(v.strip() for v in raw_values.split(",") if v.strip())
            _check_key(key, text)
            for value in values:
                _check_value(value, text)
            requirements.append(Requirement(key, operator, values))
        elif match := _EQUALITY.match(part):
            key, operator, value = match.groups()
            _check_key(key, text)
            _check_value(value, text)
            requirements.append(
                Requirement(key, "!=" if operator == "!=" else "=", frozenset([value]))
            )
        elif match := _EXISTENCE.match(part):
            negated, key = match.groups()
            _check_key(key, text)
            requirements.append(Requirement(key, "!exists" if negated else "exists"))
        else:
            raise SelectorError(f"unable to parse requirement: {part.strip()!r}")
    return tuple(requirements)


def labels_match(selector: Selector, labels: Mapping[str, str] | None) -> bool:
    present = labels or {}
    return all(requirement.matches(present) for requirement in selector)


@dataclass(frozen=True)
class FieldRequirement:
    path: str
    negated: bool
    value: str


FieldSelector = tuple[FieldRequirement, ...]

# Fields every resource can be selected by, and the extra ones kube-apiserver knows per kind.
COMMON_SELECTABLE_FIELDS = ("metadata.name", "metadata.namespace")
EXTRA_SELECTABLE_FIELDS: dict[str, tuple[str, ...]] = {
    "Pod": (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    "Event": (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
    "Secret": ("type",),
    "Namespace": ("status.phase",),
    "Job": ("status.successful",),
}


def parse_field_selector(text: str | None, allowed: tuple[str, ...]) -> FieldSelector:
    """Parse `metadata.name=x,status.phase!=Running`; unknown fields are rejected like the API does."""
    if not text or not text.strip():
        return ()
    requirements: list[FieldRequirement] = []
    for part in text.split(","):
        if not part.strip():
            continue
        match = _EQUALITY.match(part)
        if match is None:
            raise SelectorError(f"invalid selector: {text!r}; can't understand {part.strip()!r}")
        path, operator, value = match.groups()
        if path not in allowed:
            raise SelectorError(f'field label not supported: "{path}"')
        requirements.append(FieldRequirement(path, operator == "!=", value))
    return tuple(requirements)


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The string a field selector compares against; absent fields read as an empty string."""
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


def fields_match(selector: FieldSelector, obj: Mapping[str, Any]) -> bool:
    return all((field_value(obj, r.path) == r.value) != r.negated for r in selector)


def object_filter(labels: Selector, fields: FieldSelector) -> Callable[[Mapping[str, Any]], bool]:
    """One predicate for list and watch."""

    def matches(obj: Mapping[str, Any]) -> bool:
        metadata = obj.get("metadata") or {}
        return labels_match(labels, metadata.get("labels")) and fields_match(fields, obj)

    return matches
