"""Feature schema and the string values shared with the DriftPolicy resource.

The DriftPolicy passes test names, corrections and severities through unchanged, so the
values here are the resource's spelling, not Python-style names.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from driftline_vocabulary.drift import (
    CATEGORICAL_TESTS,
    NUMERIC_TESTS,
    Correction,
    FeatureType,
    Severity,
    TestName,
)

__all__ = [
    "ALLOWED_TESTS",
    "CATEGORICAL_TESTS",
    "NUMERIC_TESTS",
    "Correction",
    "Feature",
    "FeatureType",
    "Schema",
    "SchemaError",
    "Severity",
    "TestName",
    "load_schema",
]

ALLOWED_TESTS: dict[FeatureType, tuple[TestName, ...]] = {
    FeatureType.NUMERIC: NUMERIC_TESTS,
    FeatureType.CATEGORICAL: CATEGORICAL_TESTS,
}


class SchemaError(ValueError):
    """A feature schema that cannot be used."""


@dataclass(frozen=True)
class Feature:
    name: str
    type: FeatureType


@dataclass(frozen=True)
class Schema:
    features: tuple[Feature, ...]

    def __post_init__(self) -> None:
        if not self.features:
            raise SchemaError("the schema lists no features")
        seen: set[str] = set()
        for feature in self.features:
            if feature.name in seen:
                raise SchemaError(f"feature {feature.name!r} appears twice in the schema")
            seen.add(feature.name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def numeric(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.type is FeatureType.NUMERIC)

    @property
    def categorical(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.type is FeatureType.CATEGORICAL)

    def to_list(self) -> list[dict[str, str]]:
        return [{"name": f.name, "type": f.type.value} for f in self.features]

    @classmethod
    def from_list(cls, items: Any) -> Schema:
        """Parse `[{name, type}, ...]`, the format of schema files and ModelVersion specs."""
        if isinstance(items, Mapping) and "features" in items:
            items = items["features"]
        if not isinstance(items, Sequence) or isinstance(items, str | bytes):
            raise SchemaError("a schema is a list of {name, type} objects")
        features = []
        for index, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise SchemaError(f"schema entry {index} is not an object")
            name = item.get("name")
            if not isinstance(name, str) or not name:
                raise SchemaError(f"schema entry {index} has no name")
            kind = item.get("type")
            try:
                feature_type = FeatureType(str(kind))
            except ValueError:
                raise SchemaError(
                    f"feature {name!r} has type {kind!r}; expected 'numeric' or 'categorical'"
                ) from None
            features.append(Feature(name, feature_type))
        return cls(tuple(features))

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, str]]) -> Schema:
        return cls.from_list([{"name": n, "type": t} for n, t in pairs])


def load_schema(path: str | Path) -> Schema:
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise SchemaError(f"{path}: not valid JSON ({error})") from None
    return Schema.from_list(data)
