"""The RBAC authorizer's decisions, the token file and the escalation check (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from driftline.apiserver import rbac
from driftline.apiserver.rbac import (
    Policy,
    PolicyError,
    RequestAttributes,
    Rule,
    UserInfo,
    authorize,
    forbidden_message,
    service_account_user,
    uncovered,
)
from driftline.apiserver.server import name_from_field_selector
from driftline.apiserver.tokens import TokenFileError, bearer_token, parse_token_file

ALICE = UserInfo("alice", "1", ("devs", "system:authenticated"))
BOT = service_account_user("ml", "bot")


def role(namespace: str, name: str, *rules: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"namespace": namespace, "name": name}, "rules": list(rules)}


def cluster_role(name: str, *rules: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": name}, "rules": list(rules)}


def binding(
    name: str, kind: str, role_name: str, *subjects: dict[str, str], namespace: str = ""
) -> dict[str, Any]:
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {
        "kind": "RoleBinding" if namespace else "ClusterRoleBinding",
        "metadata": metadata,
        "roleRef": {"apiGroup": rbac.RBAC_GROUP, "kind": kind, "name": role_name},
        "subjects": list(subjects),
    }


def user(name: str) -> dict[str, str]:
    return {"kind": "User", "name": name}


def request(
    who: UserInfo = ALICE,
    verb: str = "get",
    group: str = "",
    resource: str = "pods",
    subresource: str = "",
    namespace: str = "ml",
    name: str = "",
) -> RequestAttributes:
    return RequestAttributes(who, verb, True, group, resource, subresource, namespace, name)


def allowed(policy: Policy, attributes: RequestAttributes) -> bool:
    return authorize(policy, attributes).allowed


def one_cluster_rule(**rule: Any) -> Policy:
    return Policy.from_objects(
        cluster_roles=[cluster_role("r", rule)],
        cluster_role_bindings=[binding("b", "ClusterRole", "r", user("alice"))],
    )


# -- rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "attributes", "expected"),
    [
        ({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}, request(), True),
        ({"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}, request(), False),
        ({"apiGroups": ["apps"], "resources": ["pods"], "verbs": ["get"]}, request(), False),
        ({"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]}, request(), True),
        ({"apiGroups": [""], "resources": ["*"], "verbs": ["*"]}, request(verb="delete"), True),
        # a resource does not grant its subresources, nor a subresource its resource
        (
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["patch"]},
            request(verb="patch", group="apps", resource="deployments", subresource="status"),
            False,
        ),
        (
            {"apiGroups": ["apps"], "resources": ["deployments/status"], "verbs": ["patch"]},
            request(verb="patch", group="apps", resource="deployments", subresource="status"),
            True,
        ),
        (
            {"apiGroups": ["apps"], "resources": ["deployments/status"], "verbs": ["patch"]},
            request(verb="patch", group="apps", resource="deployments"),
            False,
        ),
        (
            {"apiGroups": ["driftline.io"], "resources": ["*/scale"], "verbs": ["update"]},
            request(
                verb="update",
                group="driftline.io",
                resource="modeldeployments",
                subresource="scale",
            ),
            True,
        ),
        (
            {"apiGroups": ["driftline.io"], "resources": ["*/scale"], "verbs": ["update"]},
            request(verb="update", group="driftline.io", resource="modeldeployments"),
            False,
        ),
        # `*` covers every resource and every subresource
        (
            {"apiGroups": ["apps"], "resources": ["*"], "verbs": ["get"]},
            request(group="apps", resource="deployments", subresource="scale"),
            True,
        ),
        # resourceNames: only the named object; never a create or an unnamed list
        (
            {"apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"], "verbs": ["get"]},
            request(name="a"),
            True,
        ),
        (
            {"apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"], "verbs": ["get"]},
            request(name="b"),
            False,
        ),
        (
            {"apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"], "verbs": ["list"]},
            request(verb="list"),
            False,
        ),
        (
            {"apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"], "verbs": ["watch"]},
            request(verb="watch", name="a"),
            True,
        ),
        (
            {
                "apiGroups": [""],
                "resources": ["pods"],
                "resourceNames": ["a"],
                "verbs": ["create"],
            },
            request(verb="create"),
            False,
        ),
    ],
)
def test_rule_semantics(rule: dict[str, Any], attributes: RequestAttributes, expected: bool):
    assert allowed(one_cluster_rule(**rule), attributes) is expected


@pytest.mark.parametrize(
    ("urls", "path", "expected"),
    [
        (["/version"], "/version", True),
        (["/version"], "/versions", False),
        (["/apis/*"], "/apis/apps/v1", True),
        (["/apis/*"], "/apis", False),
        (["/apis*"], "/apis", True),
        (["*"], "/anything", True),
    ],
)
def test_non_resource_urls_match_exactly_or_by_prefix(urls: list[str], path: str, expected):
    policy = one_cluster_rule(nonResourceURLs=urls, verbs=["get"])
    attributes = RequestAttributes(ALICE, "get", False, path=path)
    assert allowed(policy, attributes) is expected
    assert not allowed(policy, RequestAttributes(ALICE, "post", False, path=path))


def test_non_resource_rules_grant_no_resources_and_resource_rules_no_paths():
    urls = one_cluster_rule(nonResourceURLs=["*"], verbs=["*"])
    assert not allowed(urls, request())
    resources = one_cluster_rule(apiGroups=["*"], resources=["*"], verbs=["*"])
    assert not allowed(resources, RequestAttributes(ALICE, "get", False, path="/version"))


# -- bindings and subjects -------------------------------------------------------------

POD_READER = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}


def test_a_role_binding_grants_only_in_its_namespace():
    policy = Policy.from_objects(
        roles=[role("ml", "reader", POD_READER)],
        role_bindings=[binding("b", "Role", "reader", user("alice"), namespace="ml")],
    )
    assert allowed(policy, request(namespace="ml"))
    assert not allowed(policy, request(namespace="other"))
    assert not allowed(policy, request(namespace=""))  # nor at the cluster scope


def test_a_role_binding_to_a_cluster_role_grants_its_rules_in_the_namespace_only():
    policy = Policy.from_objects(
        cluster_roles=[cluster_role("reader", POD_READER)],
        role_bindings=[binding("b", "ClusterRole", "reader", user("alice"), namespace="ml")],
    )
    decision = authorize(policy, request(namespace="ml"))
    assert decision.allowed
    assert (decision.binding, decision.role, decision.rule_index) == (
        "RoleBinding ml/b",
        "ClusterRole reader",
        0,
    )
    assert not allowed(policy, request(namespace="other"))


def test_a_cluster_role_binding_grants_everywhere():
    policy = Policy.from_objects(
        cluster_roles=[cluster_role("reader", POD_READER)],
        cluster_role_bindings=[binding("b", "ClusterRole", "reader", user("alice"))],
    )
    assert allowed(policy, request(namespace="ml"))
    assert allowed(policy, request(namespace="other"))
    assert allowed(policy, request(namespace=""))


def test_a_binding_to_a_missing_role_grants_nothing():
    policy = Policy.from_objects(
        role_bindings=[binding("b", "Role", "nowhere", user("alice"), namespace="ml")]
    )
    assert not allowed(policy, request())


@pytest.mark.parametrize(
    ("subject", "who", "expected"),
    [
        ({"kind": "User", "name": "alice"}, ALICE, True),
        ({"kind": "User", "name": "bob"}, ALICE, False),
        ({"kind": "Group", "name": "devs"}, ALICE, True),
        ({"kind": "Group", "name": "ops"}, ALICE, False),
        ({"kind": "Group", "name": "system:authenticated"}, BOT, True),
        ({"kind": "Group", "name": "system:serviceaccounts"}, BOT, True),
        ({"kind": "Group", "name": "system:serviceaccounts:ml"}, BOT, True),
        ({"kind": "Group", "name": "system:serviceaccounts:other"}, BOT, False),
        ({"kind": "ServiceAccount", "name": "bot", "namespace": "ml"}, BOT, True),
        ({"kind": "ServiceAccount", "name": "bot", "namespace": "other"}, BOT, False),
        # in a RoleBinding, a ServiceAccount without a namespace is in the binding's
        ({"kind": "ServiceAccount", "name": "bot"}, BOT, True),
        ({"kind": "User", "name": "system:serviceaccount:ml:bot"}, BOT, True),
    ],
)
def test_subjects(subject: dict[str, str], who: UserInfo, expected: bool):
    policy = Policy.from_objects(
        roles=[role("ml", "reader", POD_READER)],
        role_bindings=[binding("b", "Role", "reader", subject, namespace="ml")],
    )
    assert allowed(policy, request(who)) is expected


def test_service_account_identity_is_upstreams():
    assert service_account_user("ml", "bot") == UserInfo(
        "system:serviceaccount:ml:bot",
        "",
        ("system:serviceaccounts", "system:serviceaccounts:ml", "system:authenticated"),
    )


def test_system_masters_may_do_everything_and_nobody_else_without_a_rule():
    admin = UserInfo("root", "", ("system:masters",))
    assert allowed(Policy(), request(admin, verb="deletecollection", namespace=""))
    assert not allowed(Policy(), request())


# -- messages --------------------------------------------------------------------------


def test_forbidden_messages_are_kube_apiservers():
    assert forbidden_message(
        request(BOT, "patch", "driftline.io", "driftpolicies", "status", "ml", "other")
    ) == (
        'driftpolicies.driftline.io "other" is forbidden: User "system:serviceaccount:ml:bot" '
        'cannot patch resource "driftpolicies/status" in API group "driftline.io" in the '
        'namespace "ml"'
    )
    assert forbidden_message(request(verb="list", namespace="")) == (
        'pods is forbidden: User "alice" cannot list resource "pods" in API group "" at the '
        "cluster scope"
    )
    assert forbidden_message(RequestAttributes(ALICE, "get", False, path="/metrics")) == (
        'forbidden: User "alice" cannot get path "/metrics"'
    )
    assert authorize(Policy(), request(name="p")).reason == forbidden_message(request(name="p"))


# -- reading policy objects ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ({"apiGroups": [""], "resources": ["pods"]}, "at least one verb"),
        ({"verbs": ["get"]}, "resources or nonResourceURLs"),
        (
            {"verbs": ["get"], "resources": ["pods"], "nonResourceURLs": ["/x"]},
            "not both",
        ),
        ({"verbs": "get", "resources": ["pods"]}, "verbs must be a list of strings"),
        ({"verbs": ["get"], "resources": ["pods"], "resourcenames": ["a"]}, "unknown field"),
        ("get pods", "must be a mapping"),
    ],
)
def test_bad_rules_are_refused_with_the_reason(rule: Any, problem: str):
    with pytest.raises(PolicyError, match=problem):
        Rule.parse(rule)


def test_bad_bindings_are_refused_with_the_reason():
    with pytest.raises(PolicyError, match="only refer to a ClusterRole"):
        rbac.Binding.parse(binding("b", "Role", "r", user("a")))
    with pytest.raises(PolicyError, match="roleRef must name"):
        rbac.Binding.parse({"metadata": {"name": "b"}, "roleRef": {"kind": "Secret"}})
    with pytest.raises(PolicyError, match="unknown subject kind"):
        rbac.Binding.parse(binding("b", "ClusterRole", "r", {"kind": "Robot", "name": "x"}))
    with pytest.raises(PolicyError, match="needs a namespace"):
        rbac.Binding.parse(
            binding("b", "ClusterRole", "r", {"kind": "ServiceAccount", "name": "x"})
        )


# -- escalation ------------------------------------------------------------------------


def rules(*dicts: dict[str, Any]) -> list[Rule]:
    return [Rule.parse(d) for d in dicts]


def test_a_subset_of_what_one_holds_is_covered():
    owner = rules({"apiGroups": ["driftline.io"], "resources": ["driftpolicies"], "verbs": ["*"]})
    narrower = rules(
        {
            "apiGroups": ["driftline.io"],
            "resources": ["driftpolicies"],
            "resourceNames": ["p"],
            "verbs": ["get", "watch"],
        }
    )
    assert uncovered(owner, narrower) == []


def test_what_one_does_not_hold_is_listed_atom_by_atom():
    owner = rules({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]})
    wanted = rules({"apiGroups": [""], "resources": ["pods", "secrets"], "verbs": ["get", "list"]})
    assert uncovered(owner, wanted) == [
        Rule(("get",), ("",), ("secrets",)),
        Rule(("list",), ("",), ("pods",)),
        Rule(("list",), ("",), ("secrets",)),
    ]


def test_a_name_restricted_grant_does_not_cover_an_unrestricted_one():
    owner = rules(
        {"apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"], "verbs": ["get"]}
    )
    assert uncovered(owner, rules({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}))
    assert not uncovered(
        owner,
        rules({"apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"], "verbs": ["get"]}),
    )


def test_wildcards_cover_and_are_covered_only_by_wildcards():
    everything = rules({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]})
    anything = rules(
        {"apiGroups": ["apps"], "resources": ["deployments/status"], "verbs": ["patch"]}
    )
    assert uncovered(everything, anything) == []
    assert uncovered(anything, everything) != []
    status = rules({"apiGroups": ["apps"], "resources": ["*/status"], "verbs": ["patch"]})
    assert uncovered(status, anything) == []
    urls = rules({"nonResourceURLs": ["/apis/*"], "verbs": ["get"]})
    assert uncovered(urls, rules({"nonResourceURLs": ["/apis/apps"], "verbs": ["get"]})) == []
    assert uncovered(urls, rules({"nonResourceURLs": ["/api"], "verbs": ["get"]})) != []


# -- tokens ----------------------------------------------------------------------------


def test_token_file_in_kube_apiservers_format():
    tokens = parse_token_file('# comment\nt1,alice,1,"devs,ops"\n\nt2,bob,2\n', "tokens.csv")
    assert tokens == {
        "t1": UserInfo("alice", "1", ("devs", "ops", "system:authenticated")),
        "t2": UserInfo("bob", "2", ("system:authenticated",)),
    }


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("t1,alice\n", "tokens.csv line 1: needs at least token,user,uid"),
        ("t1,alice,1\nt1,bob,2\n", "line 2: duplicate token"),
        (",alice,1\n", "line 1: the token and the user may not be empty"),
    ],
)
def test_bad_token_files_name_the_line(text: str, problem: str):
    with pytest.raises(TokenFileError, match=problem):
        parse_token_file(text, "tokens.csv")


def test_bearer_token_header():
    assert bearer_token({"Authorization": "Bearer abc"}) == "abc"
    assert bearer_token({"Authorization": "bearer abc "}) == "abc"
    assert bearer_token({"Authorization": "Basic abc"}) is None
    assert bearer_token({"Authorization": "Bearer "}) is None
    assert bearer_token({}) is None


@pytest.mark.parametrize(
    ("selector", "name"),
    [
        ("metadata.name=p", "p"),
        ("metadata.name==p", "p"),
        ("metadata.namespace=ml,metadata.name=p", "p"),
        ("metadata.name!=p", ""),
        ("metadata.namespace=ml", ""),
        (None, ""),
    ],
)
def test_a_list_or_watch_is_named_by_its_field_selector(selector: str | None, name: str):
    assert name_from_field_selector(selector) == name
