"""What the drift pages and examples tell a user matches what the code does."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from driftline.render.settings import RenderSettings
from driftline_serving.evaluator.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
VARIABLE_REFERENCE = re.compile(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def containers_in(document: Any) -> Iterator[dict[str, Any]]:
    """Every container spec anywhere in a manifest (pod templates, Job templates)."""
    if isinstance(document, dict):
        for key, value in document.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                yield from (c for c in value if isinstance(c, dict))
            else:
                yield from containers_in(value)
    elif isinstance(document, list):
        for item in document:
            yield from containers_in(item)


def test_example_commands_name_only_variables_their_container_defines() -> None:
    # Kubernetes expands $(NAME) in command and args only from the container's own env;
    # a reference to anything else reaches the program as the literal text.
    undefined = []
    for manifest in sorted((REPO / "examples").rglob("*.yaml")):
        for document in yaml.safe_load_all(manifest.read_text()):
            for container in containers_in(document):
                defined = {e["name"] for e in container.get("env", [])}
                for text in [*container.get("command", []), *container.get("args", [])]:
                    for name in VARIABLE_REFERENCE.findall(str(text)):
                        if name not in defined:
                            undefined.append(f"{manifest.relative_to(REPO)}: $({name})")
    assert undefined == []


def test_the_evaluator_listens_where_the_operator_points_and_the_docs_say() -> None:
    rendered_port = RenderSettings(serving_image="x").evaluator_port
    assert build_parser({}).parse_args([]).port == rendered_port
    page = (REPO / "docs" / "evaluator.md").read_text()
    ports = set(re.findall(r"\bport (\d{4,5})\b", page, flags=re.IGNORECASE))
    assert ports == {str(rendered_port)}


def test_the_lifecycle_label_and_its_values_are_documented() -> None:
    from driftline.reconcile.modelversion import LIFECYCLE_LABEL, lifecycle_phase

    page = (REPO / "docs" / "modelversion-lifecycle.md").read_text()
    assert f"`{LIFECYCLE_LABEL}`" in page
    for value in ("deprecated", "retired"):
        phase = lifecycle_phase({LIFECYCLE_LABEL: value})
        assert f"| `{value}` | `{phase}` |" in page
    assert "| (absent) | `Ready` |" in page and lifecycle_phase({}) == "Ready"
