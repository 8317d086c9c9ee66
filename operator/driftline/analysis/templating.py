"""Substitution of ``{{version}}``, ``{{track}}``, ``{{namespace}}`` and ``{{deployment}}``
into a PromQL query.

Values are inserted as they are: they are Kubernetes names, meant to sit inside a label
matcher's string (``version="{{version}}"``). A value that could end that string or start
another (a quote of any of PromQL's three kinds, a backslash, a line break) is refused
rather than escaped, since no Kubernetes name contains one and escaping would hide a bug.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

PLACEHOLDERS: Final[tuple[str, ...]] = ("version", "track", "namespace", "deployment")
# `{{ name }}` with optional whitespace inside the braces; the name is anything but braces,
# so a misspelt or unknown name is caught and reported rather than left in the query.
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
# PromQL strings are quoted with ", ' or `; a backslash escapes; a line break ends a line.
_UNSAFE = frozenset("\"'`\\\n\r")


class TemplateError(ValueError):
    """The query or a value cannot be substituted safely; the message says which and why."""


def placeholders_in(query: str) -> tuple[str, ...]:
    """The placeholder names a query uses, in order of first use; unknown names are errors."""
    names: list[str] = []
    for match in _PLACEHOLDER.finditer(query):
        name = match.group(1)
        if name not in PLACEHOLDERS:
            raise TemplateError(
                f"unknown placeholder {{{{{name}}}}} in query {query!r}; "
                f"known: {', '.join('{{' + known + '}}' for known in PLACEHOLDERS)}"
            )
        if name not in names:
            names.append(name)
    leftover = _PLACEHOLDER.sub("", query)
    if "{{" in leftover or "}}" in leftover:
        raise TemplateError(f"unbalanced {{{{ or }}}} in query {query!r}")
    return tuple(names)


def render_query(query: str, values: Mapping[str, str]) -> str:
    """The query with every placeholder replaced by its value.

    Raises TemplateError naming the placeholder when it is unknown or has no value, or the
    value when it holds a character that would break out of a label matcher's string.
    """
    used = placeholders_in(query)
    for name in used:
        if name not in values:
            raise TemplateError(f"no value for placeholder {{{{{name}}}}} in query {query!r}")
        value = values[name]
        if not isinstance(value, str):
            raise TemplateError(f"the value of {{{{{name}}}}} must be a string, not {value!r}")
        if not value:
            # `label=""` matches every series without the label: never what was meant
            raise TemplateError(f"the value of {{{{{name}}}}} is empty; refused")
        unsafe = sorted(set(value) & _UNSAFE)
        if unsafe:
            raise TemplateError(
                f"the value {value!r} of {{{{{name}}}}} holds {', '.join(map(repr, unsafe))}, "
                "which would break out of a label matcher; refused"
            )
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], query)
