"""The kubelet against the local API: it runs exactly what the rendered pod spec says.

The pod is the real renderer's serving pod (server + drift sidecar), with each
container's command swapped for a script that reports its argv, environment and mounted
files; everything else (env, volumes, mounts, restart rules) is as rendered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from driftline.render.deployment import SOCKET_DIR, TOKEN_DIR
from driftline.render.security import ARTIFACT_DIR
from driftline.sandbox.kube import Kube
from driftline.sandbox.kubelet import Kubelet, KubeletOptions
from driftline.sandbox.plan import DEFAULT_TERMINATION_MESSAGE_PATH
from driftline.sandbox.slots import AddressBlock
from tests.apiserver_support import running_apiserver
from tests.sandbox.conftest import pod_from, rendered_deployment
from tests.support import wait_until_async

REPORTER = """
import json, os, sys
report = {"argv": sys.argv, "env": dict(os.environ), "mounts": {}}
for path in sys.argv[2:]:
    files = {}
    if os.path.isdir(path):
        for name in sorted(os.listdir(path)):
            full = os.path.join(path, name)
            if os.path.isfile(full):
                with open(full) as file:
                    files[name] = file.read()
    report["mounts"][path] = {"isdir": os.path.isdir(path), "files": files}
print(json.dumps(report))
with open(sys.argv[1], "w") as file:
    file.write("reported by " + os.environ["HOSTNAME"])
"""
PATHS = [DEFAULT_TERMINATION_MESSAGE_PATH, ARTIFACT_DIR, "/tmp", SOCKET_DIR, TOKEN_DIR]
KUBELET_ADDS = {
    "PATH",
    "HOSTNAME",
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
    "DRIFTLINE_HOST",
    "DRIFTLINE_EVALUATOR_HOST",
    "TMPDIR",
}


class Node:
    def __init__(self, kube: Kube, kubelet: Kubelet) -> None:
        self.kube, self.kubelet = kube, kubelet

    async def pod(self, name: str) -> dict[str, Any]:
        found = await self.kube.get("v1", "pods", "ml", name)
        assert found is not None
        return found

    async def wait_phase(self, name: str, *phases: str) -> dict[str, Any]:
        async def reached() -> dict[str, Any] | None:
            pod = await self.pod(name)
            return pod if (pod.get("status") or {}).get("phase") in phases else None

        result: dict[str, Any] = {}

        async def check() -> bool:
            found = await reached()
            if found:
                result.update(found)
            return found is not None

        await wait_until_async_coroutine(check, what=f"{name} in {phases}")
        return result


async def wait_until_async_coroutine(check: Any, *, what: str, timeout_s: float = 60) -> None:
    """`wait_until_async` for an async check (an API read on this loop)."""
    state = {"ok": False}

    async def poll() -> None:
        while True:
            state["ok"] = await check()
            if state["ok"]:
                return
            await asyncio.sleep(0.05)  # polling interval

    task = asyncio.create_task(poll())
    try:
        await wait_until_async(lambda: task.done(), timeout_s, what=what)
        task.result()
    finally:
        task.cancel()


@pytest.fixture
async def node(tmp_path: Path, block: AddressBlock) -> AsyncIterator[Node]:
    with running_apiserver() as api:
        api.controllers.disable_all()
        kube = Kube(api.url)
        address = urlparse(api.url)
        root = tmp_path / "pods"
        kubelet = Kubelet(
            kube,
            KubeletOptions(
                root=str(root),
                api_host=address.hostname or "",
                api_port=address.port or 0,
                block=block,
                restart_backoff_base_s=0.1,
                max_probe_period_s=0.2,
            ),
        )
        task = asyncio.create_task(kubelet.run())
        await kube.create("v1", "namespaces", None, {"metadata": {"name": "ml"}})
        await kube.create(
            "v1",
            "configmaps",
            "ml",
            {"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": "CERT"}},
        )
        secret = {"metadata": {"name": "model-store-credentials"}, "stringData": {"K": "v"}}
        await kube.create("v1", "secrets", "ml", secret)
        try:
            yield Node(kube, kubelet)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await kube.close()


def reporter_pod() -> dict[str, Any]:
    pod = pod_from(rendered_deployment()["spec"]["template"], "churn-stable-abc12")
    pod["metadata"].pop("uid")
    pod["spec"]["nodeName"] = "sandbox"
    pod["spec"]["restartPolicy"] = "Never"
    for container in pod["spec"]["containers"]:
        # -c: a script file under tmp_path would sit under /tmp, which the pod mounts
        container["command"] = [sys.executable, "-c", REPORTER]
        container["args"] = list(PATHS)
    return pod


def read_report(node: Node, uid: str, container: str) -> dict[str, Any]:
    directory = Path(node.kubelet.pods[uid].directory)
    report: dict[str, Any] = json.loads((directory / "logs" / f"{container}.log").read_text())
    return report


async def test_the_rendered_pod_runs_with_exactly_its_argv_env_and_volumes(node, tmp_path):
    body = reporter_pod()
    created = await node.kube.create("v1", "pods", "ml", body)
    pod = await node.wait_phase("churn-stable-abc12", "Succeeded", "Failed")
    status = pod["status"]
    assert status["phase"] == "Succeeded", json.dumps(status["containerStatuses"])
    pod_ip = status["podIP"]
    assert pod_ip == node.kubelet.options.block.pod(0)  # the first of the kubelet's own block
    for container_status in status["containerStatuses"]:
        terminated = container_status["state"]["terminated"]
        assert terminated["exitCode"] == 0
        # read back from the container's own terminationMessagePath
        assert terminated["message"] == "reported by churn-stable-abc12"
    uid = created["metadata"]["uid"]
    reports = {c["name"]: read_report(node, uid, c["name"]) for c in body["spec"]["containers"]}
    rendered = {
        c["name"]: c for c in rendered_deployment()["spec"]["template"]["spec"]["containers"]
    }
    pod_dir = Path(node.kubelet.pods[uid].directory)
    for name, report in reports.items():
        spec_env = rendered[name]["env"]
        env = report["env"]
        # argv: the command and args, each mounted path mapped into the pod's folder
        assert report["argv"][0] == "-c"
        message_file, artifacts, tmp, *_ = report["argv"][1:]
        assert Path(message_file) == pod_dir / "termination" / name
        assert Path(artifacts).is_relative_to(pod_dir) and Path(tmp).is_relative_to(pod_dir)
        assert report["mounts"][artifacts]["isdir"] and report["mounts"][tmp]["isdir"]
        # env: every rendered variable, values as rendered unless they name a mounted path
        for item in spec_env:
            value = env[item["name"]]
            if "value" not in item:
                continue
            if item["value"] == ARTIFACT_DIR:
                assert value == artifacts
            elif item["value"].startswith(f"unix://{SOCKET_DIR}/"):
                assert value == f"unix://{report['argv'][4]}/samples.sock"
            else:
                assert value == item["value"], item["name"]
        field_refs = {
            i["name"]: i["valueFrom"]["fieldRef"]["fieldPath"] for i in spec_env if "valueFrom" in i
        }
        for variable, path in field_refs.items():
            assert (
                env[variable]
                == {"metadata.name": "churn-stable-abc12", "metadata.namespace": "ml"}[path]
            )
        # nothing else than what a kubelet adds, the secret both containers take with
        # envFrom (K), and the sidecar's kubeconfig
        # (LC_CTYPE: Python's own C-locale coercion, PEP 538, sets it in the reporter)
        extra = set(env) - {i["name"] for i in spec_env} - KUBELET_ADDS - {"LC_CTYPE"}
        assert extra == ({"K"} if name == "server" else {"K", "KUBECONFIG"})
        assert env["DRIFTLINE_HOST"] == env["DRIFTLINE_EVALUATOR_HOST"] == pod_ip
        assert env["TMPDIR"] == tmp
    server, evaluator = reports["server"], reports["drift-evaluator"]
    # the emptyDirs both containers mount are shared; the token only reaches the sidecar
    assert server["argv"][2:5] == evaluator["argv"][2:5]
    assert server["argv"][5] == TOKEN_DIR  # not mounted in the server: left as written
    token_dir = evaluator["argv"][5]
    assert token_dir != TOKEN_DIR
    files = evaluator["mounts"][token_dir]["files"]
    assert files["namespace"] == "ml" and files["ca.crt"] == "CERT" and files["token"]
    kubeconfig = Path(evaluator["env"]["KUBECONFIG"]).read_text()
    assert f"tokenFile: {token_dir}/token" in kubeconfig
    assert f"server: {node.kube.server}" in kubeconfig


async def test_restarts_exit_codes_and_log_fallback_are_reported(node, tmp_path):
    crashing = {
        "metadata": {"name": "crasher"},
        "spec": {
            "nodeName": "sandbox",
            "containers": [
                {
                    "name": "c",
                    "image": "i",
                    "command": [sys.executable, "-c", "raise SystemExit(3)"],
                }
            ],
        },
    }
    await node.kube.create("v1", "pods", "ml", crashing)

    async def restarted() -> bool:
        statuses = ((await node.pod("crasher")).get("status") or {}).get("containerStatuses")
        return bool(statuses) and statuses[0]["restartCount"] >= 2

    await wait_until_async_coroutine(restarted, what="two restarts")
    status = (await node.pod("crasher"))["status"]["containerStatuses"][0]
    assert status["lastState"]["terminated"]["exitCode"] == 3
    assert status["lastState"]["terminated"]["reason"] == "Error"

    failing = {
        "metadata": {"name": "failing"},
        "spec": {
            "nodeName": "sandbox",
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "c",
                    "image": "i",
                    "command": [
                        sys.executable,
                        "-c",
                        "print('boom: bad digest'); raise SystemExit(2)",
                    ],
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                }
            ],
        },
    }
    await node.kube.create("v1", "pods", "ml", failing)
    pod = await node.wait_phase("failing", "Failed", "Succeeded")
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert pod["status"]["phase"] == "Failed"
    assert terminated["exitCode"] == 2
    assert terminated["message"] == "boom: bad digest"


async def test_a_command_that_cannot_start_is_reported_as_exit_code_128(node):
    body = {
        "metadata": {"name": "missing"},
        "spec": {
            "nodeName": "sandbox",
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "i", "command": ["no-such-command-here"]}],
        },
    }
    await node.kube.create("v1", "pods", "ml", body)
    pod = await node.wait_phase("missing", "Failed", "Succeeded")
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert pod["status"]["phase"] == "Failed"
    assert terminated["exitCode"] == 128
    assert (
        "cannot start" in terminated["message"] and "no-such-command-here" in terminated["message"]
    )


async def test_an_unsupported_pod_fails_with_the_reason(node):
    body = {
        "metadata": {"name": "hostpath"},
        "spec": {
            "nodeName": "sandbox",
            "volumes": [{"name": "h", "hostPath": {"path": "/etc"}}],
            "containers": [{"name": "c", "image": "i", "command": ["true"]}],
        },
    }
    await node.kube.create("v1", "pods", "ml", body)
    pod = await node.wait_phase("hostpath", "Failed")
    assert pod["status"]["reason"] == "SandboxUnsupported"
    assert "hostPath is not supported" in pod["status"]["message"]


async def test_a_deleted_pod_s_processes_are_stopped(node, tmp_path):
    marker = tmp_path / "pid"
    body = {
        "metadata": {"name": "sleeper"},
        "spec": {
            "nodeName": "sandbox",
            "containers": [
                {
                    "name": "c",
                    "image": "i",
                    "command": [
                        sys.executable,
                        "-c",
                        f"import os, time; open({str(marker)!r}, 'w').write(str(os.getpid())); time.sleep(600)",
                    ],
                }
            ],
        },
    }
    await node.kube.create("v1", "pods", "ml", body)
    await wait_until_async(lambda: marker.exists() and marker.read_text(), 60, what="pid written")
    pid = int(marker.read_text())
    import psutil

    assert psutil.pid_exists(pid)
    await node.kube.delete("v1", "pods", "ml", "sleeper")
    await wait_until_async(
        lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE,
        60,
        what="the container process gone",
    )
