"""RBAC authorization as kube-apiserver decides it, as pure functions.

`authorize(policy, request)` answers whether a user may do one request and which rule of
which binding allowed it; `covers(owner_rules, rules)` is the escalation check (a user may
only grant what it holds). The semantics are upstream's (k8s.io/kubernetes
plugin/pkg/auth/authorizer/rbac and pkg/apis/rbac/v1 helpers): `*` wildcards for groups,
resources, verbs and URLs, `*/<subresource>`, resourceNames, URL prefixes ending in `*`,
RoleBindings that apply only in their namespace, and the `system:masters` group that may do
everything. No I/O here: the server builds the policy from its store and asks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

RBAC_GROUP = "rbac.authorization.k8s.io"
SUPERUSER_GROUP = "system:masters"
AUTHENTICATED_GROUP = "system:authenticated"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
SERVICE_ACCOUNTS_GROUP = "system:serviceaccounts"
ALL = "*"


class PolicyError(ValueError):
    """A Role, ClusterRole or binding that cannot be read as RBAC."""


@dataclass(frozen=True)
class UserInfo:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()


def service_account_user(namespace: str, name: str, uid: str = "") -> UserInfo:
    """The identity a ServiceAccount token authenticates as."""
    return UserInfo(
        f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}",
        uid,
        (SERVICE_ACCOUNTS_GROUP, f"{SERVICE_ACCOUNTS_GROUP}:{namespace}", AUTHENTICATED_GROUP),
    )


@dataclass(frozen=True)
class RequestAttributes:
    """What the authorizer sees of a request (upstream's authorizer.Attributes)."""

    user: UserInfo
    verb: str
    resource_request: bool = True
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""  # "" for cluster-scoped requests
    name: str = ""
    path: str = ""  # for non-resource requests

    @property
    def combined_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


@dataclass(frozen=True)
class Rule:
    verbs: tuple[str, ...]
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    @classmethod
    def parse(cls, rule: Any) -> Rule:
        if not isinstance(rule, Mapping):
            raise PolicyError(f"a rule must be a mapping, not {type(rule).__name__}: {rule!r}")
        unknown = set(rule) - {
            "verbs",
            "apiGroups",
            "resources",
            "resourceNames",
            "nonResourceURLs",
        }
        if unknown:
            raise PolicyError(f"unknown field(s) {sorted(unknown)} in rule {dict(rule)!r}")

        def strings(key: str) -> tuple[str, ...]:
            value = rule.get(key) or []
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise PolicyError(f"{key} must be a list of strings in rule {dict(rule)!r}")
            return tuple(value)

        parsed = cls(
            strings("verbs"),
            strings("apiGroups"),
            strings("resources"),
            strings("resourceNames"),
            strings("nonResourceURLs"),
        )
        if not parsed.verbs:
            raise PolicyError(f"a rule needs at least one verb: {dict(rule)!r}")
        if parsed.non_resource_urls and (parsed.resources or parsed.api_groups):
            raise PolicyError(
                f"a rule names either resources or nonResourceURLs, not both: {dict(rule)!r}"
            )
        if not parsed.non_resource_urls and not parsed.resources:
            raise PolicyError(f"a rule needs resources or nonResourceURLs: {dict(rule)!r}")
        return parsed

    def allows(self, request: RequestAttributes) -> bool:
        if not _verb_matches(self.verbs, request.verb):
            return False
        if not request.resource_request:
            return _url_matches(self.non_resource_urls, request.path)
        return (
            (ALL in self.api_groups or request.api_group in self.api_groups)
            and _resource_matches(self.resources, request.combined_resource, request.subresource)
            and (not self.resource_names or request.name in self.resource_names)
        )

    def as_dict(self) -> dict[str, list[str]]:
        fields = {
            "apiGroups": self.api_groups,
            "resources": self.resources,
            "resourceNames": self.resource_names,
            "nonResourceURLs": self.non_resource_urls,
            "verbs": self.verbs,
        }
        return {key: list(value) for key, value in fields.items() if value}


def _verb_matches(verbs: tuple[str, ...], verb: str) -> bool:
    return ALL in verbs or verb in verbs


def _resource_matches(resources: tuple[str, ...], combined: str, subresource: str) -> bool:
    for resource in resources:
        if resource in (ALL, combined):
            return True
        if subresource and resource == f"*/{subresource}":
            return True
    return False


def _url_matches(urls: tuple[str, ...], path: str) -> bool:
    for url in urls:
        if url in (ALL, path):
            return True
        if url.endswith("*") and path.startswith(url.rstrip("*")):
            return True
    return False


def parse_rules(rules: Any) -> tuple[Rule, ...]:
    if rules is None:
        return ()
    if not isinstance(rules, list):
        raise PolicyError(f"rules must be a list, not {type(rules).__name__}")
    return tuple(Rule.parse(rule) for rule in rules)


@dataclass(frozen=True)
class Subject:
    kind: str  # User, Group or ServiceAccount
    name: str
    namespace: str = ""

    def applies_to(self, user: UserInfo, binding_namespace: str) -> bool:
        if self.kind == "User":
            return user.name == self.name
        if self.kind == "Group":
            return self.name in user.groups
        if self.kind == "ServiceAccount":
            namespace = self.namespace or binding_namespace
            return bool(namespace) and user.name == (
                f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{self.name}"
            )
        return False


@dataclass(frozen=True)
class Binding:
    """A RoleBinding (namespace set) or a ClusterRoleBinding (namespace "")."""

    name: str
    namespace: str
    role_kind: str  # Role or ClusterRole
    role_name: str
    subjects: tuple[Subject, ...]

    @property
    def describe(self) -> str:
        if self.namespace:
            return f"RoleBinding {self.namespace}/{self.name}"
        return f"ClusterRoleBinding {self.name}"

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> Binding:
        metadata = obj.get("metadata") or {}
        namespace = metadata.get("namespace") or ""
        what = f"{obj.get('kind', 'binding')} {namespace + '/' if namespace else ''}"
        what += str(metadata.get("name"))
        ref = obj.get("roleRef") or {}
        kind = ref.get("kind")
        if kind not in ("Role", "ClusterRole") or not ref.get("name"):
            raise PolicyError(f"{what}: roleRef must name a Role or a ClusterRole: {ref!r}")
        if kind == "Role" and not namespace:
            raise PolicyError(f"{what}: a ClusterRoleBinding can only refer to a ClusterRole")
        subjects = []
        for subject in obj.get("subjects") or []:
            if subject.get("kind") not in ("User", "Group", "ServiceAccount"):
                raise PolicyError(f"{what}: unknown subject kind in {subject!r}")
            if subject["kind"] == "ServiceAccount" and not (subject.get("namespace") or namespace):
                raise PolicyError(f"{what}: a ServiceAccount subject needs a namespace")
            subjects.append(
                Subject(subject["kind"], subject.get("name") or "", subject.get("namespace") or "")
            )
        return cls(metadata.get("name") or "", namespace, kind, ref["name"], tuple(subjects))


@dataclass(frozen=True)
class Policy:
    """Every Role, ClusterRole and binding in the cluster."""

    roles: Mapping[tuple[str, str], tuple[Rule, ...]] = field(default_factory=dict)
    cluster_roles: Mapping[str, tuple[Rule, ...]] = field(default_factory=dict)
    bindings: tuple[Binding, ...] = ()

    @classmethod
    def from_objects(
        cls,
        roles: Iterable[Mapping[str, Any]] = (),
        cluster_roles: Iterable[Mapping[str, Any]] = (),
        role_bindings: Iterable[Mapping[str, Any]] = (),
        cluster_role_bindings: Iterable[Mapping[str, Any]] = (),
    ) -> Policy:
        return cls(
            {
                (r["metadata"]["namespace"], r["metadata"]["name"]): parse_rules(r.get("rules"))
                for r in roles
            },
            {r["metadata"]["name"]: parse_rules(r.get("rules")) for r in cluster_roles},
            tuple(Binding.parse(b) for b in (*cluster_role_bindings, *role_bindings)),
        )

    def role_rules(self, binding: Binding) -> tuple[Rule, ...]:
        if binding.role_kind == "Role":
            return self.roles.get((binding.namespace, binding.role_name), ())
        return self.cluster_roles.get(binding.role_name, ())

    def grants(self, user: UserInfo, namespace: str) -> Iterator[tuple[Binding, int, Rule]]:
        """Each rule that applies to `user` for a request in `namespace` ("": cluster scope),
        with its binding and its index in the role's rules."""
        for binding in self.bindings:
            if binding.namespace and binding.namespace != namespace:
                continue  # a RoleBinding grants only inside its own namespace
            if not any(s.applies_to(user, binding.namespace) for s in binding.subjects):
                continue
            for index, rule in enumerate(self.role_rules(binding)):
                yield binding, index, rule

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[Rule, ...]:
        return tuple(rule for _, _, rule in self.grants(user, namespace))


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    binding: str = ""  # "ClusterRoleBinding x" or "RoleBinding ns/x"
    role: str = ""  # "ClusterRole y" or "Role ns/y"
    rule_index: int = -1
    rule: Rule | None = None


def authorize(policy: Policy, request: RequestAttributes) -> Decision:
    if SUPERUSER_GROUP in request.user.groups:
        return Decision(True, f"the group {SUPERUSER_GROUP} may do everything")
    namespace = request.namespace if request.resource_request else ""
    for binding, index, rule in policy.grants(request.user, namespace):
        if rule.allows(request):
            role = f"{binding.role_kind} " + (
                f"{binding.namespace}/{binding.role_name}"
                if binding.role_kind == "Role"
                else binding.role_name
            )
            return Decision(
                True,
                f"allowed by {binding.describe} of {role}",
                binding.describe,
                role,
                index,
                rule,
            )
    return Decision(False, forbidden_message(request))


def forbidden_message(request: RequestAttributes) -> str:
    """kube-apiserver's message for a denied request (responsewriters.forbiddenMessage inside
    errors.NewForbidden)."""
    user = request.user.name
    if not request.resource_request:
        return f'forbidden: User "{user}" cannot {request.verb} path "{request.path}"'
    scope = (
        f'in the namespace "{request.namespace}"' if request.namespace else "at the cluster scope"
    )
    why = (
        f'User "{user}" cannot {request.verb} resource "{request.combined_resource}" '
        f'in API group "{request.api_group}" {scope}'
    )
    qualified = f"{request.resource}.{request.api_group}" if request.api_group else request.resource
    if request.name:
        return f'{qualified} "{request.name}" is forbidden: {why}'
    return f"{qualified} is forbidden: {why}"


# -- escalation: a user may grant only what it holds -----------------------------------


def _atoms(rule: Rule) -> Iterator[Rule]:
    """A rule as single-verb, single-resource, single-name rules (upstream BreakdownRule)."""
    for verb in rule.verbs:
        for group in rule.api_groups:
            for resource in rule.resources:
                if rule.resource_names:
                    for name in rule.resource_names:
                        yield Rule((verb,), (group,), (resource,), (name,))
                else:
                    yield Rule((verb,), (group,), (resource,))
        for url in rule.non_resource_urls:
            yield Rule((verb,), non_resource_urls=(url,))


def _atom_covered(owner: Rule, atom: Rule) -> bool:
    if not _verb_matches(owner.verbs, atom.verbs[0]):
        return False
    if atom.non_resource_urls:
        url = atom.non_resource_urls[0]
        return any(
            o in (ALL, url) or (o.endswith("*") and url.startswith(o.rstrip("*")))
            for o in owner.non_resource_urls
        )
    group, resource = atom.api_groups[0], atom.resources[0]
    if not (ALL in owner.api_groups or group in owner.api_groups):
        return False
    subresource = resource.split("/", 1)[1] if "/" in resource else ""
    if not _resource_matches(owner.resources, resource, subresource):
        return False
    if not owner.resource_names:
        return True
    return bool(atom.resource_names) and atom.resource_names[0] in owner.resource_names


def uncovered(owner_rules: Iterable[Rule], rules: Iterable[Rule]) -> list[Rule]:
    """The parts of `rules` that no rule of `owner_rules` grants (empty: fully covered)."""
    owner = tuple(owner_rules)
    return [
        atom
        for rule in rules
        for atom in _atoms(rule)
        if not any(_atom_covered(o, atom) for o in owner)
    ]


def escalation_message(
    user: UserInfo, kind: str, namespace: str, name: str, missing: list[Rule]
) -> str:
    """kube-apiserver's refusal of a Role or ClusterRole that grants more than its creator has."""
    resource = "roles" if kind == "Role" else "clusterroles"
    listed = ", ".join(str(rule.as_dict()) for rule in missing[:10])
    scope = f' in namespace "{namespace}"' if namespace else ""
    return (
        f'{resource}.{RBAC_GROUP} "{name}" is forbidden: user "{user.name}" '
        f"(groups={list(user.groups)}) is attempting to grant RBAC permissions not currently "
        f"held{scope}: {listed}"
    )


def referenced_role(binding: Binding) -> tuple[str, str]:
    """The (plural, name) a binding refers to, as the `bind` verb is checked on."""
    return ("roles" if binding.role_kind == "Role" else "clusterroles", binding.role_name)
