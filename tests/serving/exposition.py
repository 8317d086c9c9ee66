"""Reading the server's /metrics text in tests, with prometheus_client's own parser."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')


def parse_labels(labels: str) -> dict[str, str]:
    """'a="1",b="2"' -> {"a": "1", "b": "2"}."""
    parsed: dict[str, str] = {}
    position = 0
    while position < len(labels):
        match = _MATCHER.match(labels, position)
        assert match is not None, f"cannot read labels {labels!r} at {position}"
        parsed[match.group(1)] = match.group(2)
        position = match.end()
    return parsed


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of an exposition: (name, labels, value)."""
    return [
        (sample.name, dict(sample.labels), float(sample.value))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def metric_value(text: str, name: str, labels: str = "") -> float:
    """The value of the one sample of ``name`` whose labels include ``labels``."""
    wanted = parse_labels(labels)
    matching = [
        value
        for sample_name, sample_labels, value in samples(text)
        if sample_name == name and wanted.items() <= sample_labels.items()
    ]
    assert len(matching) == 1, f"{len(matching)} samples of {name}{{{labels}}}, expected one"
    return matching[0]
