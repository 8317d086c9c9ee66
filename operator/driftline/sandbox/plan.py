"""Pod spec -> the processes that run it (pure).

A container becomes one process: its `command` + `args` after Kubernetes' `$(VAR)`
expansion, an environment built only from the spec (plus what a kubelet itself adds), and
its volume mounts mapped to per-pod directories. The sandbox cannot mount at absolute
paths without root, so every string that names a path under a mountPath (an env value
or an argument that is the path, starts with `mountPath/`, or is `scheme://` followed by
such a path) is rewritten to the volume's directory; nothing else is touched. The
"image" is this machine's installation: paths under it (the Python environment, the
repository the sandbox runs from) are never rewritten, even under a mountPath such as
/tmp, since a container's programs come from its image and not from its volumes.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TERMINATION_MESSAGE_PATH = "/dev/termination-log"
# The servers' documented bind-address variables: a real pod's processes own the pod's
# network namespace, here they must bind its loopback address (set unless the spec does).
BIND_ADDRESS_ENV = ("DRIFTLINE_HOST", "DRIFTLINE_EVALUATOR_HOST")
SUPPORTED_VOLUMES = ("emptyDir", "projected", "secret", "configMap", "downwardAPI")


class PlanError(ValueError):
    """The pod cannot run in the sandbox; the message says which field and why."""


@dataclass(frozen=True, slots=True)
class Probe:
    kind: str  # "startup", "readiness" or "liveness"
    path: str
    port: int
    period_s: float
    failure_threshold: int
    success_threshold: int
    initial_delay_s: float


@dataclass(frozen=True, slots=True)
class ContainerPlan:
    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    # mountPath -> host directory (or file, for the termination message)
    mounts: Mapping[str, str]
    termination_message_path: str  # on the host
    termination_message_policy: str
    ports: Mapping[str, int]
    probes: tuple[Probe, ...] = ()


@dataclass(frozen=True, slots=True)
class PodPlan:
    volumes: Mapping[str, str]  # volume name -> host directory
    containers: tuple[ContainerPlan, ...]
    restart_policy: str
    grace_period_s: float
    # files the kubelet writes before starting (projected token, namespace, configMaps)
    files: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PodContext:
    """What the kubelet knows beyond the spec: addresses, directories, credentials."""

    pod_ip: str
    pod_dir: str
    api_host: str
    api_port: int
    token: str
    kubeconfig_path: str  # a kubeconfig the kubelet writes beside the token
    path_env: str  # PATH for the processes (where the commands are installed)
    secrets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    config_maps: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # the "image": directories whose paths are never mapped into a volume
    image_roots: tuple[str, ...] = field(default_factory=lambda: default_image_roots())


def default_image_roots() -> tuple[str, ...]:
    """The Python environment, and the repository for an editable install (the package
    is operator/driftline there; an installed one is under the environment already)."""
    package_home = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    repository = os.path.dirname(os.path.dirname(package_home))
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, repository}
    return tuple(sorted(root for root in roots if root and root != "/"))


_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: defined names are replaced, `$$` is a `$`, and an
    undefined reference stays as written."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return variables.get(name, match.group(0))

    return _VAR.sub(replace, text)


def map_path(text: str, mounts: Mapping[str, str], image_roots: Sequence[str] = ()) -> str:
    """`text` with a leading mountPath (longest first) replaced by its host directory, when
    `text` is that path, starts with `path/`, or is `scheme://` and such a path; a path
    under one of `image_roots` is left as it is."""
    prefix = ""
    rest = text
    scheme = re.match(r"^([a-z][a-z0-9+.\-]*://)(/.*)$", text)
    if scheme:
        prefix, rest = scheme.group(1), scheme.group(2)
    if any(rest == root or rest.startswith(root.rstrip("/") + "/") for root in image_roots):
        return text
    for mount in sorted(mounts, key=len, reverse=True):
        if rest == mount:
            return prefix + mounts[mount]
        if rest.startswith(mount.rstrip("/") + "/"):
            return prefix + mounts[mount] + rest[len(mount.rstrip("/")) :]
    return text


def field_value(pod: Mapping[str, Any], path: str, pod_ip: str) -> str:
    """The downward API's fieldRef values a kubelet resolves."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "status.podIP": pod_ip,
        "status.hostIP": "127.0.0.1",
    }
    if path in simple:
        return str(simple[path])
    labelled = re.match(r"^metadata\.(labels|annotations)\['([^']+)'\]$", path)
    if labelled:
        return str((meta.get(labelled.group(1)) or {}).get(labelled.group(2), ""))
    raise PlanError(f"fieldRef {path!r} is not supported by the sandbox kubelet")


def _key_ref(
    kind: str, ref: Mapping[str, Any], store: Mapping[str, Mapping[str, str]], where: str
) -> str | None:
    name, key = ref.get("name", ""), ref.get("key", "")
    data = store.get(name)
    if data is None or key not in data:
        if ref.get("optional"):
            return None
        raise PlanError(f"{where}: {kind} {name!r} has no key {key!r}")
    return data[key]


def container_env(
    pod: Mapping[str, Any], container: Mapping[str, Any], context: PodContext
) -> dict[str, str]:
    """The environment as a kubelet builds it: envFrom, then env in order (each value
    expanded against the ones before), over the variables a kubelet always sets."""
    name = container.get("name", "")
    env: dict[str, str] = {
        "PATH": context.path_env,
        "HOSTNAME": (pod.get("metadata") or {}).get("name", ""),
        "KUBERNETES_SERVICE_HOST": context.api_host,
        "KUBERNETES_SERVICE_PORT": str(context.api_port),
    }
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, store in (("secretRef", context.secrets), ("configMapRef", context.config_maps)):
            ref = source.get(kind)
            if ref is None:
                continue
            data = store.get(ref.get("name", ""))
            if data is None:
                if ref.get("optional"):
                    continue
                raise PlanError(f"container {name!r}: envFrom {kind} {ref.get('name')!r} not found")
            env.update({prefix + k: v for k, v in data.items()})
    for item in container.get("env") or []:
        var = item["name"]
        if "valueFrom" in item:
            source = item["valueFrom"]
            value: str | None
            if "fieldRef" in source:
                value = field_value(pod, source["fieldRef"]["fieldPath"], context.pod_ip)
            elif "secretKeyRef" in source:
                value = _key_ref(
                    "Secret", source["secretKeyRef"], context.secrets, f"container {name!r}"
                )
            elif "configMapKeyRef" in source:
                value = _key_ref(
                    "ConfigMap",
                    source["configMapKeyRef"],
                    context.config_maps,
                    f"container {name!r}",
                )
            else:
                raise PlanError(f"container {name!r}: env {var!r} has an unsupported valueFrom")
            if value is not None:
                env[var] = value
        else:
            env[var] = expand(str(item.get("value", "")), env)
    return env


def _volume_files(
    volume: Mapping[str, Any], directory: str, pod: Mapping[str, Any], context: PodContext
) -> dict[str, str]:
    """The files a projected/downwardAPI/secret/configMap volume holds, by host path."""
    files: dict[str, str] = {}
    name = volume["name"]
    if "projected" in volume:
        for source in volume["projected"].get("sources") or []:
            if "serviceAccountToken" in source:
                token_path = source["serviceAccountToken"].get("path", "token")
                files[os.path.join(directory, token_path)] = context.token
            elif "configMap" in source:
                ref = source["configMap"]
                data = context.config_maps.get(ref.get("name", ""), {})
                for item in ref.get("items") or [{"key": k, "path": k} for k in data]:
                    if item["key"] in data:
                        files[os.path.join(directory, item["path"])] = data[item["key"]]
            elif "downwardAPI" in source:
                files.update(_downward_files(source["downwardAPI"], directory, pod, context))
            elif "secret" in source:
                ref = source["secret"]
                data = context.secrets.get(ref.get("name", ""), {})
                for key, value in data.items():
                    files[os.path.join(directory, key)] = value
    elif "downwardAPI" in volume:
        # a retraining Job's context file (driftline.api.retraining) comes this way
        files.update(_downward_files(volume["downwardAPI"], directory, pod, context))
    elif "secret" in volume or "configMap" in volume:
        kind = "secret" if "secret" in volume else "configMap"
        ref = volume[kind]
        store = context.secrets if kind == "secret" else context.config_maps
        ref_name = ref.get("secretName") or ref.get("name", "")
        found = store.get(ref_name)
        if found is None and not ref.get("optional"):
            raise PlanError(f"volume {name!r}: {kind} {ref_name!r} not found")
        data = found or {}
        for key, value in data.items():
            files[os.path.join(directory, key)] = value
    return files


def _downward_files(
    source: Mapping[str, Any], directory: str, pod: Mapping[str, Any], context: PodContext
) -> dict[str, str]:
    files: dict[str, str] = {}
    for item in source.get("items") or []:
        if "fieldRef" not in item:
            raise PlanError(
                f"downwardAPI item {item.get('path')!r}: only fieldRef is supported by the "
                "sandbox kubelet"
            )
        path = item["fieldRef"]["fieldPath"]
        files[os.path.join(directory, item["path"])] = field_value(pod, path, context.pod_ip)
    return files


def _port_number(port: Any, ports: Mapping[str, int], where: str) -> int:
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    if port in ports:
        return ports[port]
    raise PlanError(f"{where}: port {port!r} names no container port")


def _probes(container: Mapping[str, Any], ports: Mapping[str, int]) -> tuple[Probe, ...]:
    probes = []
    for kind in ("startup", "readiness", "liveness"):
        spec = container.get(f"{kind}Probe")
        if not spec:
            continue
        where = f"container {container.get('name')!r} {kind}Probe"
        if "httpGet" not in spec:
            raise PlanError(f"{where}: only httpGet probes are supported by the sandbox kubelet")
        probes.append(
            Probe(
                kind=kind,
                path=spec["httpGet"].get("path", "/"),
                port=_port_number(spec["httpGet"].get("port"), ports, where),
                period_s=float(spec.get("periodSeconds", 10)),
                failure_threshold=int(spec.get("failureThreshold", 3)),
                success_threshold=int(spec.get("successThreshold", 1)),
                initial_delay_s=float(spec.get("initialDelaySeconds", 0)),
            )
        )
    return tuple(probes)


def plan_pod(pod: Mapping[str, Any], context: PodContext) -> PodPlan:
    """How the kubelet runs `pod`: directories, files, and one process per container."""
    spec = pod.get("spec") or {}
    if spec.get("initContainers"):
        raise PlanError("initContainers are not supported by the sandbox kubelet")
    volume_root = os.path.join(context.pod_dir, "v")
    volumes: dict[str, str] = {}
    files: dict[str, str] = {}
    for volume in spec.get("volumes") or []:
        kinds = [k for k in SUPPORTED_VOLUMES if k in volume]
        if not kinds:
            other = sorted(set(volume) - {"name"})
            raise PlanError(
                f"volume {volume['name']!r}: {', '.join(other) or 'no source'} is not supported "
                f"(the sandbox supports {', '.join(SUPPORTED_VOLUMES)})"
            )
        directory = os.path.join(volume_root, volume["name"])
        volumes[volume["name"]] = directory
        files.update(_volume_files(volume, directory, pod, context))
    containers = []
    for container in spec.get("containers") or []:
        containers.append(_plan_container(pod, container, volumes, context))
    if not containers:
        raise PlanError("the pod has no containers")
    token_dirs = [os.path.dirname(path) for path in files if os.path.basename(path) == "token"]
    if token_dirs:
        files[context.kubeconfig_path] = kubeconfig_text(
            context, os.path.join(token_dirs[0], "token")
        )
    return PodPlan(
        volumes=volumes,
        containers=tuple(containers),
        restart_policy=spec.get("restartPolicy", "Always"),
        grace_period_s=float(spec.get("terminationGracePeriodSeconds", 30)),
        files=files,
    )


def kubeconfig_text(context: PodContext, token_file: str) -> str:
    """A kubeconfig for the pod's ServiceAccount token: the local API speaks plain http,
    which in-cluster configuration (always https) cannot reach."""
    server = f"http://{context.api_host}:{context.api_port}"
    return (
        "apiVersion: v1\nkind: Config\ncurrent-context: pod\n"
        f"clusters:\n- name: sandbox\n  cluster:\n    server: {server}\n"
        f"users:\n- name: pod\n  user:\n    tokenFile: {token_file}\n"
        "contexts:\n- name: pod\n  context:\n    cluster: sandbox\n    user: pod\n"
    )


def _plan_container(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    volumes: Mapping[str, str],
    context: PodContext,
) -> ContainerPlan:
    name = container.get("name", "")
    command: Sequence[str] = container.get("command") or []
    if not command:
        raise PlanError(
            f"container {name!r} has no command: the sandbox runs commands, it knows no "
            "image entrypoints"
        )
    mounts: dict[str, str] = {}
    for mount in container.get("volumeMounts") or []:
        if mount["name"] not in volumes:
            raise PlanError(f"container {name!r}: volumeMount {mount['name']!r} names no volume")
        target = volumes[mount["name"]]
        if mount.get("subPath"):
            target = os.path.join(target, mount["subPath"])
        mounts[mount["mountPath"]] = target
    message_path = container.get("terminationMessagePath") or DEFAULT_TERMINATION_MESSAGE_PATH
    host_message = os.path.join(context.pod_dir, "termination", name)
    mounts[message_path] = host_message
    ports = {
        p["name"]: int(p["containerPort"]) for p in container.get("ports") or [] if p.get("name")
    }
    env = container_env(pod, container, context)
    # The kubelet's own values (PATH, the API's address) name host paths already; only
    # what the spec says is mapped.
    own = container_env(pod, {"name": name}, context)
    env = {
        key: value if own.get(key) == value else map_path(value, mounts, context.image_roots)
        for key, value in env.items()
    }
    for variable in BIND_ADDRESS_ENV:
        env.setdefault(variable, context.pod_ip)
    if "/tmp" in mounts:
        env.setdefault("TMPDIR", mounts["/tmp"])  # where tempfile looks, as /tmp would be
    if _mounts_token(container, pod):
        # in-cluster configuration needs https and fixed paths; a kubeconfig naming the
        # token file does the same with the local API's plain http
        env.setdefault("KUBECONFIG", context.kubeconfig_path)
    argv = [
        map_path(expand(str(a), env), mounts, context.image_roots)
        for a in [*command, *container.get("args", [])]
    ]
    return ContainerPlan(
        name=name,
        argv=tuple(argv),
        env=env,
        mounts=mounts,
        termination_message_path=host_message,
        termination_message_policy=container.get("terminationMessagePolicy", "File"),
        ports=ports,
        probes=_probes(container, ports),
    )


def _mounts_token(container: Mapping[str, Any], pod: Mapping[str, Any]) -> bool:
    """Whether the container mounts a volume that projects a ServiceAccount token."""
    token_volumes = {
        v["name"]
        for v in (pod.get("spec") or {}).get("volumes") or []
        if any("serviceAccountToken" in s for s in (v.get("projected") or {}).get("sources") or [])
    }
    return any(m["name"] in token_volumes for m in container.get("volumeMounts") or [])
