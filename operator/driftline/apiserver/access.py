"""Authentication and RBAC authorization for the local API (off unless asked for).

Who is asking: a bearer token from the static token file, the admin token the server
writes into its own kubeconfig (group `system:masters`, as a real cluster's admin), or a
ServiceAccount token minted through the TokenRequest API (valid while that ServiceAccount
exists). What they may do: `rbac.authorize` over the Roles, ClusterRoles and bindings in
the store. Every decision is counted, and with a log path written as one JSON line, so a
test can tell which grants were used and which requests were denied.
"""

from __future__ import annotations

import contextvars
import datetime
import secrets
import threading
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from driftline.apiserver import rbac
from driftline.apiserver.errors import ApiError
from driftline.apiserver.rbac import RBAC_GROUP, Decision, Policy, RequestAttributes, UserInfo
from driftline.apiserver.resources import ResourceType
from driftline.apiserver.store import Event, Obj
from driftline.apiserver.tokens import with_authenticated

ADMIN = UserInfo("driftline-admin", "driftline-admin", (rbac.SUPERUSER_GROUP,))
TOKEN_SECONDS = 3600
MIN_TOKEN_SECONDS = 600  # as kube-apiserver: ten minutes at least
_RBAC_STORAGES = {
    (RBAC_GROUP, "roles"),
    (RBAC_GROUP, "clusterroles"),
    (RBAC_GROUP, "rolebindings"),
    (RBAC_GROUP, "clusterrolebindings"),
}
# Who sent the request being served: the escalation check runs inside the cluster's write
# path (on the final object, after any patch), which knows nothing of HTTP.
REQUESTER: contextvars.ContextVar[UserInfo | None] = contextvars.ContextVar(
    "driftline_requester", default=None
)

# As every real cluster bootstraps it: anyone authenticated may discover the API.
DISCOVERY_ROLE: Obj = {
    "apiVersion": f"{RBAC_GROUP}/v1",
    "kind": "ClusterRole",
    "metadata": {"name": "system:discovery"},
    "rules": [
        {
            "nonResourceURLs": [
                "/api",
                "/api/*",
                "/apis",
                "/apis/*",
                "/healthz",
                "/livez",
                "/readyz",
                "/openapi",
                "/openapi/*",
                "/version",
                "/version/",
            ],
            "verbs": ["get"],
        }
    ],
}
DISCOVERY_BINDING: Obj = {
    "apiVersion": f"{RBAC_GROUP}/v1",
    "kind": "ClusterRoleBinding",
    "metadata": {"name": "system:discovery"},
    "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "system:discovery"},
    "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": rbac.AUTHENTICATED_GROUP}],
}


@dataclass(frozen=True)
class Use:
    """One kind of request and what decided it, as counted and logged."""

    user: str
    verb: str
    api_group: str
    resource: str  # with its subresource: "deployments/status"
    namespaced: bool
    allowed: bool
    binding: str = ""
    role: str = ""
    rule_index: int = -1
    path: str = ""  # non-resource requests


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden(request: RequestAttributes, message: str) -> ApiError:
    details: dict[str, Any] = {}
    if request.resource_request:
        details = {"kind": request.resource}
        if request.name:
            details["name"] = request.name
        if request.api_group:
            details["group"] = request.api_group
    return ApiError(403, "Forbidden", message, details or None)


class AccessControl:
    def __init__(
        self,
        cluster: Any,
        tokens: dict[str, UserInfo] | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.cluster = cluster
        self.admin_token = secrets.token_urlsafe(32)
        self._tokens: dict[str, UserInfo] = {self.admin_token: with_authenticated(ADMIN)}
        self._tokens.update(tokens or {})
        # minted ServiceAccount token -> (namespace, name, uid of the ServiceAccount)
        self._account_tokens: dict[str, tuple[str, str, str]] = {}
        self.uses: Counter[Use] = Counter()
        self.denials: list[str] = []
        self._log_path = log_path
        self._log_lock = threading.Lock()
        self._policy: Policy | None = None
        cluster.store.listen(self._forget_policy)
        cluster.admissions.append(self._no_escalation)
        for plural, body in (
            ("clusterroles", DISCOVERY_ROLE),
            ("clusterrolebindings", DISCOVERY_BINDING),
        ):
            resource = cluster.resource(RBAC_GROUP, "v1", plural)
            if cluster.store.get(resource.storage_key, "", body["metadata"]["name"]) is None:
                cluster.create(resource, None, body)

    # -- who ---------------------------------------------------------------------------

    def authenticate(self, token: str | None) -> UserInfo:
        if token is None:
            raise unauthorized()
        user = self._tokens.get(token)
        if user is not None:
            return user
        account = self._account_tokens.get(token)
        if account is not None:
            namespace, name, uid = account
            stored = self.cluster.store.get(("", "serviceaccounts"), namespace, name)
            if stored is not None and stored["metadata"]["uid"] == uid:
                return rbac.service_account_user(namespace, name, uid)
            del self._account_tokens[token]  # its ServiceAccount is gone: so is the token
        raise unauthorized()

    def request_token(self, namespace: str, name: str, body: Any) -> Obj:
        """The TokenRequest API: a bearer token for a ServiceAccount that exists."""
        account = self.cluster.get(
            self.cluster.resource("", "v1", "serviceaccounts"), namespace, name
        )
        spec = body.get("spec") if isinstance(body, dict) else None
        spec = spec if isinstance(spec, dict) else {}
        seconds = spec.get("expirationSeconds") or TOKEN_SECONDS
        if not isinstance(seconds, int) or seconds < MIN_TOKEN_SECONDS:
            raise ApiError(
                422,
                "Invalid",
                f'TokenRequest.authentication.k8s.io "{name}" is invalid: '
                f"spec.expirationSeconds: Invalid value: {seconds!r}: may not specify a "
                f"duration less than {MIN_TOKEN_SECONDS} seconds",
            )
        token = secrets.token_urlsafe(32)
        self._account_tokens[token] = (namespace, name, account["metadata"]["uid"])
        expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)
        return {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"audiences": spec.get("audiences") or [], "expirationSeconds": seconds},
            "status": {
                "token": token,
                "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        }

    # -- what --------------------------------------------------------------------------

    def policy(self) -> Policy:
        if self._policy is None:
            store = self.cluster.store

            def listed(plural: str) -> list[Obj]:
                return store.list_objects((RBAC_GROUP, plural))

            self._policy = Policy.from_objects(
                listed("roles"),
                listed("clusterroles"),
                listed("rolebindings"),
                listed("clusterrolebindings"),
            )
        return self._policy

    def _forget_policy(self, event: Event) -> None:
        if event.storage in _RBAC_STORAGES:
            self._policy = None

    def authorize(self, request: RequestAttributes) -> None:
        """Nothing when allowed; a 403 ApiError with kube-apiserver's message when not."""
        decision = rbac.authorize(self.policy(), request)
        self._record(request, decision)
        if not decision.allowed:
            raise forbidden(request, decision.reason)

    def _record(self, request: RequestAttributes, decision: Decision) -> None:
        use = Use(
            request.user.name,
            request.verb,
            request.api_group,
            request.combined_resource,
            bool(request.namespace),
            decision.allowed,
            decision.binding,
            decision.role,
            decision.rule_index,
            "" if request.resource_request else request.path,
        )
        self.uses[use] += 1
        if not decision.allowed:
            self.denials.append(decision.reason)
        if self._log_path is not None:
            line = orjson.dumps(
                {**asdict(use), "namespace": request.namespace, "name": request.name}
            )
            with self._log_lock, self._log_path.open("ab") as log:
                log.write(line + b"\n")

    # -- escalation --------------------------------------------------------------------

    def _no_escalation(self, resource: ResourceType, old: Obj | None, obj: Obj) -> Obj:
        user = REQUESTER.get()
        if user is None or resource.group != RBAC_GROUP or rbac.SUPERUSER_GROUP in user.groups:
            return obj
        namespace = obj.get("metadata", {}).get("namespace") or ""
        name = obj.get("metadata", {}).get("name") or ""
        if resource.plural in ("roles", "clusterroles"):
            self._check_role(user, resource, namespace, name, obj)
        elif resource.plural in ("rolebindings", "clusterrolebindings"):
            self._check_binding(user, resource, namespace, name, obj)
        return obj

    def _may(self, user: UserInfo, verb: str, plural: str, namespace: str, name: str) -> bool:
        attributes = RequestAttributes(user, verb, True, RBAC_GROUP, plural, "", namespace, name)
        return rbac.authorize(self.policy(), attributes).allowed

    def _check_role(
        self, user: UserInfo, resource: ResourceType, namespace: str, name: str, obj: Obj
    ) -> None:
        if self._may(user, "escalate", resource.plural, namespace, name):
            return
        try:
            rules = rbac.parse_rules(obj.get("rules"))
        except rbac.PolicyError as exc:
            raise ApiError(422, "Invalid", f'{resource.kind} "{name}" is invalid: {exc}') from exc
        missing = rbac.uncovered(self.policy().rules_for(user, namespace), rules)
        if missing:
            raise ApiError(
                403,
                "Forbidden",
                rbac.escalation_message(user, resource.kind, namespace, name, missing),
                {"name": name, "group": RBAC_GROUP, "kind": resource.plural},
            )

    def _check_binding(
        self, user: UserInfo, resource: ResourceType, namespace: str, name: str, obj: Obj
    ) -> None:
        try:
            binding = rbac.Binding.parse(obj)
        except rbac.PolicyError as exc:
            raise ApiError(422, "Invalid", f'{resource.kind} "{name}" is invalid: {exc}') from exc
        plural, role_name = rbac.referenced_role(binding)
        if self._may(user, "bind", plural, namespace, role_name):
            return
        policy = self.policy()
        missing = rbac.uncovered(policy.rules_for(user, namespace), policy.role_rules(binding))
        if missing:
            listed = ", ".join(str(rule.as_dict()) for rule in missing[:10])
            raise ApiError(
                403,
                "Forbidden",
                f'{resource.group_resource} "{name}" is forbidden: user "{user.name}" '
                f"(groups={list(user.groups)}) is attempting to grant RBAC permissions not "
                f"currently held: {listed}",
                {"name": name, "group": RBAC_GROUP, "kind": resource.plural},
            )
