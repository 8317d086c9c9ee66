"""Child names and selectors are unique per parent, valid, and unchanged where they can be."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from driftline.render import labels as lbl
from driftline.render.service import service_name

DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

# DNS-1123 labels joined by dots, at most 253 characters: every valid ModelDeployment name.
# Short alphabets on purpose: they make the hard pairs (a.b and a-b, md-1x and 1x, a shared
# 63-character prefix) likely.
_label = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)
_dense_label = st.from_regex(r"[ab1m]([-.ab1dm]{0,6}[ab1m])?", fullmatch=True)
_long_prefix = "a" * 63


def _join(labels: list[str]) -> str:
    return ".".join(labels)


resource_names = st.one_of(
    st.lists(_label, min_size=1, max_size=5).map(_join),
    _dense_label,
    _dense_label.map(lambda tail: f"md-{tail}"),
    _dense_label.map(lambda tail: f"{_long_prefix}{tail}"),
    _dense_label.map(lambda tail: f"{_long_prefix}.{tail}"),
).filter(lambda name: len(name) <= 253 and DNS_1123_SUBDOMAIN.match(name) is not None)


def children(name: str) -> dict[str, str]:
    return {
        "service": service_name(name),
        **{f"deployment-{t}": lbl.track_deployment_name(name, t) for t in lbl.TRACKS},
        "evaluator": lbl.evaluator_account_name(name),
        "pdb": lbl.pdb_name(name),
        "selector": lbl.selector_string(lbl.server_selector(name)),
    }


@settings(max_examples=400, deadline=None)
@given(first=resource_names, second=resource_names)
@example(first="1x", second="md-1x")
@example(first="a.b", second="a-b")
@example(first=f"{_long_prefix}-one", second=f"{_long_prefix}-two")
@example(first="a--b", second="a-b")
def test_distinct_parents_never_share_a_child_name_or_selector(first: str, second: str) -> None:
    if first == second:
        return
    mine, theirs = children(first), children(second)
    for kind in mine:
        assert mine[kind] != theirs[kind], (kind, first, second)
    # Deployments of all tracks of both parents share one namespace and kind.
    deployments = [n[k] for n in (mine, theirs) for k in n if k.startswith("deployment-")]
    assert len(set(deployments)) == len(deployments), deployments


@settings(max_examples=300, deadline=None)
@given(name=resource_names)
def test_every_child_name_is_valid_in_kubernetes(name: str) -> None:
    names = children(name)
    assert DNS_1035_LABEL.match(names.pop("service")), name
    names.pop("selector")
    for kind, child in names.items():
        # Kubernetes takes DNS-1123 subdomains for these kinds; at most 63 characters so
        # that the name also fits the labels Kubernetes derives from it (pod names, job-name).
        assert len(child) <= 63 and DNS_1123_SUBDOMAIN.match(child), (kind, child)
    for value in lbl.server_selector(name).values():
        assert len(value) <= 63 and LABEL_VALUE.match(value), value


@settings(max_examples=200, deadline=None)
@given(name=resource_names)
def test_dotless_names_make_dns_1123_label_children(name: str) -> None:
    names = children(name)
    for kind in ("deployment-stable", "deployment-canary", "deployment-preview", "evaluator"):
        if "." not in name:
            assert DNS_1123_LABEL.match(names[kind]), (kind, names[kind])


@pytest.mark.parametrize(
    ("name", "service", "stable", "evaluator"),
    [
        ("churn", "churn", "churn-stable", "churn-drift-evaluator"),
        ("md-1x", "md-1x", "md-1x-stable", "md-1x-drift-evaluator"),
        ("a-b", "a-b", "a-b-stable", "a-b-drift-evaluator"),
        ("churn.v1", None, "churn.v1-stable", "churn.v1-drift-evaluator"),
    ],
)
def test_names_that_need_no_change_are_kept(name, service, stable, evaluator) -> None:
    """Existing clusters keep their objects: only names that had to change get a hash."""
    if service is not None:
        assert service_name(name) == service
    assert lbl.track_deployment_name(name, "stable") == stable
    assert lbl.evaluator_account_name(name) == evaluator
    assert lbl.server_selector(name)[lbl.INSTANCE] == name


@pytest.mark.parametrize(
    ("name", "prefix"), [("1x", "md-1x--"), ("a.b", "a-b--"), ("7up", "md-7up--")]
)
def test_transformed_service_names_carry_a_hash_of_the_original(name, prefix) -> None:
    assert service_name(name) == prefix + lbl.name_digest(name)


def test_cut_label_values_carry_a_hash_and_stay_valid() -> None:
    long_one, long_two = "a" * 63 + "-one", "a" * 63 + "-two"
    one, two = lbl.label_value(long_one), lbl.label_value(long_two)
    assert one != two
    for value in (one, two):
        assert len(value) <= 63 and LABEL_VALUE.match(value)
    assert one.endswith("_" + lbl.name_digest(long_one))
    assert lbl.label_value("2.0.0") == "2.0.0"
    assert lbl.label_value("a+b") != lbl.label_value("a-b")


def services_of(name: str) -> set[str]:
    from driftline.render.httproute import track_service_name
    from driftline.render.service import preview_service_name

    return {
        service_name(name),
        preview_service_name(name),
        *(track_service_name(name, track) for track in lbl.TRACKS),
    }


@settings(max_examples=300, deadline=None)
@given(first=resource_names, second=resource_names)
@example(first="x", second="x-preview")
@example(first="x", second="x--preview")
def test_no_service_of_one_parent_is_named_as_any_service_of_another(first: str, second: str):
    """A parent has several Services (the one clients call, a preview, one per track for an
    HTTPRoute): none may take another parent's name, whichever role either has."""
    if first == second:
        return
    mine, theirs = services_of(first), services_of(second)
    assert len(mine) == 1 + len(lbl.TRACKS)  # the preview Service is the preview's backend
    assert not mine & theirs
    for name in mine:
        assert DNS_1035_LABEL.match(name) and len(name) <= 63, name
