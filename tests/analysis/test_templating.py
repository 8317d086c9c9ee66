"""Placeholders in PromQL queries: substitution, unknown names, unsafe values."""

from __future__ import annotations

import pytest

from driftline.analysis.templating import TemplateError, placeholders_in, render_query

VALUES = {"version": "churn-v2", "track": "canary", "namespace": "ml", "deployment": "churn"}


def test_every_placeholder_is_substituted() -> None:
    query = (
        'sum(rate(x{version="{{version}}",track="{{track}}",'
        'namespace="{{namespace}}",deployment="{{deployment}}"}[2m]))'
    )
    assert render_query(query, VALUES) == (
        'sum(rate(x{version="churn-v2",track="canary",namespace="ml",deployment="churn"}[2m]))'
    )


@pytest.mark.parametrize("placeholder", ["{{ version }}", "{{version }}", "{{\tversion\n}}"])
def test_whitespace_inside_the_braces_is_allowed(placeholder: str) -> None:
    assert render_query(f'x{{v="{placeholder}"}}', VALUES) == 'x{v="churn-v2"}'


def test_a_placeholder_used_twice_is_substituted_twice() -> None:
    query = 'a{v="{{version}}"} / b{v="{{ version }}"}'
    assert render_query(query, VALUES) == 'a{v="churn-v2"} / b{v="churn-v2"}'
    assert placeholders_in(query) == ("version",)


def test_a_query_without_placeholders_is_unchanged() -> None:
    assert render_query("up", {}) == "up"


def test_only_the_used_placeholders_need_values() -> None:
    assert render_query('x{ns="{{namespace}}"}', {"namespace": "ml"}) == 'x{ns="ml"}'


def test_an_unknown_placeholder_is_an_error_naming_it() -> None:
    with pytest.raises(TemplateError, match=r"unknown placeholder \{\{model\}\}"):
        render_query('x{m="{{ model }}"}', VALUES)


def test_an_empty_placeholder_is_an_error() -> None:
    with pytest.raises(TemplateError, match=r"unknown placeholder \{\{\}\}"):
        render_query('x{m="{{ }}"}', VALUES)


@pytest.mark.parametrize("query", ['x{v="{{version"}', 'x{v="version}}"}', "x{{v}"])
def test_unbalanced_braces_are_an_error(query: str) -> None:
    with pytest.raises(TemplateError, match="unbalanced"):
        render_query(query, VALUES)


def test_a_missing_value_is_an_error_naming_the_placeholder() -> None:
    with pytest.raises(TemplateError, match=r"no value for placeholder \{\{track\}\}"):
        render_query('x{t="{{track}}"}', {"version": "v1"})


@pytest.mark.parametrize("bad", ['v1"} or up{a="', "v1'", "v1`", "v\\1", "v1\nup", "v1\r"])
def test_a_value_that_would_break_out_of_a_label_matcher_is_refused(bad: str) -> None:
    with pytest.raises(TemplateError, match=r"\{\{version\}\}.*break out"):
        render_query('x{v="{{version}}"}', {"version": bad})


def test_an_empty_value_is_refused() -> None:
    with pytest.raises(TemplateError, match="empty"):
        render_query('x{v="{{version}}"}', {"version": ""})


def test_a_value_is_inserted_literally_not_as_a_regex_replacement() -> None:
    # re.sub would expand \1 or \g<0> in a replacement string; backslashes are refused
    # anyway, but group-like text without one must pass through unchanged
    assert render_query('x{v="{{version}}"}', {"version": "g<0>-1"}) == 'x{v="g<0>-1"}'
