"""Authentication and RBAC over HTTP: the local API answers as kube-apiserver does."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from tests.apiserver_support import RunningApiServer, running_apiserver
from tests.cli.helpers import DRIFTLINE, clean_environment, run
from tests.support import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
RBAC_API = "/apis/rbac.authorization.k8s.io/v1"
TOKENS = 'alice-token,alice,1,"devs"\nbob-token,bob,2\n'


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[RunningApiServer]:
    tokens = tmp_path / "tokens.csv"
    tokens.write_text(TOKENS)
    with running_apiserver(
        kubeconfig_path=tmp_path / "kubeconfig",
        crds=REPO_ROOT / "crds",
        authorization="RBAC",
        token_file=tokens,
        authorization_log=tmp_path / "decisions.jsonl",
    ) as api:
        admin(api, "POST", "/api/v1/namespaces", {"metadata": {"name": "ml"}})
        yield api


def http(
    api: RunningApiServer,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None,
    content_type: str = "application/json",
) -> tuple[int, Any]:
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(api.url + path, data, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def admin(api: RunningApiServer, method: str, path: str, body: Any = None) -> Any:
    code, answer = http(api, method, path, body, token=api.admin_token)
    assert code < 300, answer
    return answer


def grant(api: RunningApiServer, subject: dict[str, str], *rules: dict[str, Any]) -> None:
    """A Role in `ml` with `rules`, bound to `subject` there."""
    name = f"r{len(api.cluster.store.list_objects(('rbac.authorization.k8s.io', 'roles')))}"
    admin(
        api,
        "POST",
        f"{RBAC_API}/namespaces/ml/roles",
        {"metadata": {"name": name}, "rules": list(rules)},
    )
    admin(
        api,
        "POST",
        f"{RBAC_API}/namespaces/ml/rolebindings",
        {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [subject],
        },
    )


ALICE = {"kind": "User", "name": "alice"}


def test_a_request_without_a_known_token_is_unauthorized(secured):
    for token in (None, "nobody"):
        code, status = http(secured, "GET", "/api/v1/namespaces/ml/pods", token=token)
        assert (code, status["reason"], status["message"]) == (401, "Unauthorized", "Unauthorized")
        code, _ = http(secured, "GET", "/apis", token=token)
        assert code == 401


def test_the_admin_kubeconfig_may_do_everything(secured):
    config = yaml.safe_load(secured.kubeconfig_path.read_text())
    token = config["users"][0]["user"]["token"]
    assert token == secured.admin_token
    assert secured.kubeconfig_path.stat().st_mode & 0o077 == 0  # a credential
    code, _ = http(secured, "DELETE", "/api/v1/namespaces/ml/pods", token=token)
    assert code == 200


def test_a_denial_is_kube_apiservers_403(secured):
    code, status = http(secured, "GET", "/api/v1/namespaces/ml/secrets/db", token="alice-token")
    assert code == 403
    assert status == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'secrets "db" is forbidden: User "alice" cannot get resource "secrets" in '
        'API group "" in the namespace "ml"',
        "reason": "Forbidden",
        "code": 403,
        "details": {"name": "db", "kind": "secrets"},
    }
    code, status = http(secured, "GET", f"{RBAC_API}/clusterroles", token="alice-token")
    assert status["message"] == (
        'clusterroles.rbac.authorization.k8s.io is forbidden: User "alice" cannot list '
        'resource "clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope'
    )


def test_verbs_come_from_the_method_and_the_path(secured):
    grant(secured, ALICE, {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]})
    path = "/api/v1/namespaces/ml/configmaps"
    assert http(secured, "GET", path, token="alice-token")[0] == 200
    expected = {
        ("GET", f"{path}?watch=1"): "watch",
        ("GET", f"{path}/c"): "get",
        ("POST", path): "create",
        ("PUT", f"{path}/c"): "update",
        ("PATCH", f"{path}/c"): "patch",
        ("DELETE", f"{path}/c"): "delete",
        ("DELETE", path): "deletecollection",
    }
    for (method, url), verb in expected.items():
        body = {} if method in ("POST", "PUT", "PATCH") else None
        code, status = http(
            secured,
            method,
            url,
            body,
            token="alice-token",
            content_type="application/merge-patch+json",
        )
        assert code == 403, (method, url)
        assert f'User "alice" cannot {verb} resource "configmaps"' in status["message"]


def test_subresources_are_granted_apart_from_their_resource(secured):
    admin(
        secured,
        "POST",
        "/apis/apps/v1/namespaces/ml/deployments",
        {
            "metadata": {"name": "d"},
            "spec": {
                "selector": {"matchLabels": {"a": "b"}},
                "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "x"}]},
                },
            },
        },
    )
    grant(
        secured,
        ALICE,
        {"apiGroups": ["apps"], "resources": ["deployments/status"], "verbs": ["patch"]},
    )
    path = "/apis/apps/v1/namespaces/ml/deployments/d"
    patch = {"status": {"observedGeneration": 1}}
    merge = "application/merge-patch+json"
    assert (
        http(secured, "PATCH", f"{path}/status", patch, token="alice-token", content_type=merge)[0]
        == 200
    )
    code, status = http(secured, "PATCH", path, patch, token="alice-token", content_type=merge)
    assert code == 403 and 'cannot patch resource "deployments"' in status["message"]
    code, status = http(secured, "GET", f"{path}/scale", token="alice-token")
    assert code == 403 and 'cannot get resource "deployments/scale"' in status["message"]


def test_resource_names_allow_one_object_and_a_watch_narrowed_to_it(secured):
    grant(
        secured,
        ALICE,
        {
            "apiGroups": ["driftline.io"],
            "resources": ["driftpolicies"],
            "resourceNames": ["mine"],
            "verbs": ["get", "list", "watch"],
        },
    )
    admin(
        secured,
        "POST",
        "/apis/driftline.io/v1alpha1/namespaces/ml/driftpolicies",
        {"metadata": {"name": "mine"}, "spec": {"targetRef": {"name": "churn"}}},
    )
    base = "/apis/driftline.io/v1alpha1/namespaces/ml/driftpolicies"
    assert http(secured, "GET", f"{base}/mine", token="alice-token")[0] == 200
    assert http(secured, "GET", f"{base}/theirs", token="alice-token")[0] == 403
    assert http(secured, "GET", base, token="alice-token")[0] == 403  # an unnamed list
    named = f"{base}?fieldSelector=metadata.name%3Dmine"
    code, listed = http(secured, "GET", named, token="alice-token")
    assert code == 200 and [p["metadata"]["name"] for p in listed["items"]] == ["mine"]
    other = f"{base}?fieldSelector=metadata.name%3Dtheirs&watch=1&timeoutSeconds=1"
    assert http(secured, "GET", other, token="alice-token")[0] == 403


def test_bindings_apply_to_groups_and_service_accounts(secured):
    admin(secured, "POST", "/api/v1/namespaces/ml/serviceaccounts", {"metadata": {"name": "bot"}})
    token = secured.service_account_token("ml", "bot")
    pods = "/api/v1/namespaces/ml/pods"
    assert http(secured, "GET", pods, token=token)[0] == 403
    grant(
        secured,
        {"kind": "Group", "name": "system:serviceaccounts:ml"},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
    )
    assert http(secured, "GET", pods, token=token)[0] == 200
    assert http(secured, "GET", pods, token="bob-token")[0] == 403
    grant(
        secured,
        {"kind": "Group", "name": "devs"},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
    )
    assert http(secured, "GET", pods, token="alice-token")[0] == 200
    assert http(secured, "GET", pods, token="bob-token")[0] == 403


def test_a_service_account_token_dies_with_its_account(secured):
    accounts = "/api/v1/namespaces/ml/serviceaccounts"
    admin(secured, "POST", accounts, {"metadata": {"name": "bot"}})
    token = secured.service_account_token("ml", "bot")
    assert http(secured, "GET", "/apis", token=token)[0] == 200
    admin(secured, "DELETE", f"{accounts}/bot")
    admin(secured, "POST", accounts, {"metadata": {"name": "bot"}})  # same name, new account
    assert http(secured, "GET", "/apis", token=token)[0] == 401


def test_minting_a_token_is_itself_authorized(secured):
    admin(secured, "POST", "/api/v1/namespaces/ml/serviceaccounts", {"metadata": {"name": "bot"}})
    path = "/api/v1/namespaces/ml/serviceaccounts/bot/token"
    code, status = http(secured, "POST", path, {"spec": {}}, token="alice-token")
    assert code == 403
    assert 'cannot create resource "serviceaccounts/token"' in status["message"]
    code, status = http(
        secured, "POST", path, {"spec": {"expirationSeconds": 5}}, token=secured.admin_token
    )
    assert code == 422 and "may not specify a duration less than 600" in status["message"]
    code, _ = http(
        secured,
        "POST",
        "/api/v1/namespaces/ml/serviceaccounts/ghost/token",
        {},
        token=secured.admin_token,
    )
    assert code == 404


def test_anyone_authenticated_may_discover_the_api_and_nothing_more(secured):
    for path in ("/api", "/apis", "/apis/driftline.io/v1alpha1", "/version", "/openapi/v2"):
        assert http(secured, "GET", path, token="bob-token")[0] == 200, path
    code, status = http(secured, "GET", "/metrics", token="bob-token")
    assert (code, status["message"]) == (403, 'forbidden: User "bob" cannot get path "/metrics"')
    roles = {
        r["metadata"]["name"] for r in admin(secured, "GET", f"{RBAC_API}/clusterroles")["items"]
    }
    assert "system:discovery" in roles


def test_one_may_grant_only_what_one_holds(secured):
    grant(
        secured,
        ALICE,
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["roles", "rolebindings"],
            "verbs": ["create"],
        },
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
    )
    roles = f"{RBAC_API}/namespaces/ml/roles"
    held = {
        "metadata": {"name": "held"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
    }
    assert http(secured, "POST", roles, held, token="alice-token")[0] == 201
    more = {
        "metadata": {"name": "more"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
    }
    code, status = http(secured, "POST", roles, more, token="alice-token")
    assert code == 403
    assert status["message"].startswith(
        'roles.rbac.authorization.k8s.io "more" is forbidden: user "alice" (groups=['
    )
    assert "attempting to grant RBAC permissions not currently held" in status["message"]
    assert "secrets" in status["message"]
    admin(secured, "POST", roles, more)  # the admin may

    bindings = f"{RBAC_API}/namespaces/ml/rolebindings"

    def binding_to(role: str) -> dict[str, Any]:
        return {
            "metadata": {"name": f"to-{role}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": [{"kind": "User", "name": "bob"}],
        }

    assert http(secured, "POST", bindings, binding_to("held"), token="alice-token")[0] == 201
    code, status = http(secured, "POST", bindings, binding_to("more"), token="alice-token")
    assert code == 403 and "not currently held" in status["message"]
    # `bind` on that role, or `escalate` on roles, is what lets one grant more
    grant(
        secured,
        ALICE,
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["roles"],
            "resourceNames": ["more"],
            "verbs": ["bind"],
        },
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["escalate"]},
    )
    assert http(secured, "POST", bindings, binding_to("more"), token="alice-token")[0] == 201
    even_more = {**more, "metadata": {"name": "even-more"}}
    assert http(secured, "POST", roles, even_more, token="alice-token")[0] == 201


def test_a_patch_that_would_escalate_is_refused_on_the_patched_role(secured):
    grant(
        secured,
        ALICE,
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["roles"],
            "verbs": ["create", "patch"],
        },
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
    )
    roles = f"{RBAC_API}/namespaces/ml/roles"
    body = {
        "metadata": {"name": "mine"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
    }
    assert http(secured, "POST", roles, body, token="alice-token")[0] == 201
    wider = {"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "delete"]}]}
    code, status = http(
        secured,
        "PATCH",
        f"{roles}/mine",
        wider,
        token="alice-token",
        content_type="application/merge-patch+json",
    )
    assert code == 403 and "'verbs': ['delete']" in status["message"]


def test_every_decision_is_counted_and_logged_with_the_rule_that_allowed_it(secured, tmp_path):
    grant(secured, ALICE, {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]})
    http(secured, "GET", "/api/v1/namespaces/ml/pods", token="alice-token")
    http(secured, "GET", "/api/v1/namespaces/ml/pods/p", token="alice-token")
    lines = [json.loads(line) for line in (tmp_path / "decisions.jsonl").read_text().splitlines()]
    alice = [line for line in lines if line["user"] == "alice"]
    assert alice == [
        {
            "user": "alice",
            "verb": "list",
            "api_group": "",
            "resource": "pods",
            "namespaced": True,
            "allowed": True,
            "binding": "RoleBinding ml/r0",
            "role": "Role ml/r0",
            "rule_index": 0,
            "path": "",
            "namespace": "ml",
            "name": "",
        },
        {
            "user": "alice",
            "verb": "get",
            "api_group": "",
            "resource": "pods",
            "namespaced": True,
            "allowed": False,
            "binding": "",
            "role": "",
            "rule_index": -1,
            "path": "",
            "namespace": "ml",
            "name": "p",
        },
    ]
    assert secured.denials() == [
        'pods "p" is forbidden: User "alice" cannot get resource "pods" in API group "" in '
        'the namespace "ml"'
    ]


def test_without_rbac_everyone_may_do_everything(apiserver):
    assert apiserver.admin_token is None
    code, _ = http(apiserver, "GET", "/api/v1/namespaces/default/pods", token=None)
    assert code == 200


def test_running_apiserver_refuses_half_a_configuration(tmp_path):
    with (
        pytest.raises(ValueError, match="need authorization='RBAC'"),
        running_apiserver(token_file=tmp_path / "t"),
    ):
        pass
    with (
        pytest.raises(ValueError, match="'RBAC' or 'AlwaysAllow'"),
        running_apiserver(authorization="Webhook"),
    ):
        pass


def test_the_command_serves_rbac_with_a_token_file(tmp_path):
    tokens = tmp_path / "tokens.csv"
    tokens.write_text(TOKENS)
    kubeconfig = tmp_path / "kubeconfig"
    env = clean_environment(tmp_path)
    process = subprocess.Popen(
        [
            *DRIFTLINE,
            "apiserver",
            "--no-crds",
            "--kubeconfig",
            str(kubeconfig),
            "--authorization-mode",
            "RBAC",
            "--token-auth-file",
            str(tokens),
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(
            lambda: kubeconfig.exists() or process.poll() is not None, 60, what="the kubeconfig"
        )
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
        core = kubernetes.client.CoreV1Api(client)
        assert "default" in {n.metadata.name for n in core.list_namespace().items}
        server = client.configuration.host
        request = urllib.request.Request(
            f"{server}/api/v1/namespaces", headers={"Authorization": "Bearer bob-token"}
        )
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(request, timeout=30)
        assert denied.value.code == 403
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_the_command_refuses_a_bad_token_file(tmp_path):
    tokens = tmp_path / "tokens.csv"
    tokens.write_text("only-a-token\n")
    args = [
        *DRIFTLINE,
        "apiserver",
        "--kubeconfig",
        str(tmp_path / "k"),
        "--authorization-mode",
        "RBAC",
    ]
    done = run([*args, "--token-auth-file", str(tokens)], env=clean_environment(tmp_path))
    assert done.returncode == 2
    assert "line 1: needs at least token,user,uid" in done.stderr
    done = run(
        [
            *DRIFTLINE,
            "apiserver",
            "--kubeconfig",
            str(tmp_path / "k"),
            "--token-auth-file",
            str(tokens),
        ],
        env=clean_environment(tmp_path),
    )
    assert done.returncode == 2 and "need --authorization-mode RBAC" in done.stderr
