"""The story's steady traffic through the Service, and the ground truth fed back for it.

Each request carries an id. Its answer names, in the Driftline-Pod header, the pod whose
drift sidecar remembers the answer; a moment later the request's true label goes to that
pod's feedback endpoint (through a load-balanced Service it would mostly reach a pod that
never saw the id). The sidecars join the labels to their predictions, and the policy's
performance check compares the live accuracy with the ModelVersion's offline one.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from driftline.sandbox.kube import Kube, KubeError
from driftline.sandbox.routing import target_port

POD_HEADER = "Driftline-Pod"
LABEL_DELAY_S = 1.0  # labels arrive after the answer, as in life; also the batching pace


@dataclass
class Traffic:
    """Answers of the steady traffic, by the model version that answered."""

    answered: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    recent: list[str] = field(default_factory=list)  # the last answers' versions

    def record(self, version: str | None) -> None:
        if version is None:
            self.errors += 1
            return
        self.answered[version] += 1
        self.recent = [*self.recent[-39:], version]

    def only(self, version: str, last: int = 20) -> bool:
        tail = self.recent[-last:]
        return len(tail) == last and all(v == version for v in tail)


@dataclass
class LabelFeed:
    """Labels owed to the pods that answered, and how many were delivered."""

    owed: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # pod -> (id, label)
    delivered: int = 0
    undelivered: int = 0  # the pod was gone or refused them

    def owe(self, pod: str, request_id: str, label: int) -> None:
        self.owed.setdefault(pod, []).append((request_id, label))

    def take(self) -> dict[str, list[tuple[str, int]]]:
        owed, self.owed = self.owed, {}
        return owed


def request_body(input_name: str, row: Sequence[float], request_id: str) -> dict[str, Any]:
    return {
        "id": request_id,
        "inputs": [
            {"name": input_name, "shape": [1, len(row)], "datatype": "FP32", "data": list(row)}
        ],
    }


def feedback_addresses(pods: Sequence[Mapping[str, Any]], port_name: str) -> dict[str, str]:
    """Pod name -> "ip:port" of its named container port, for pods that have an IP."""
    found = {}
    for pod in pods:
        ip = (pod.get("status") or {}).get("podIP")
        port = target_port(pod, port_name)
        if ip and port is not None:
            found[pod["metadata"]["name"]] = f"{ip}:{port}"
    return found


async def send_traffic(
    traffic: Traffic,
    feed: LabelFeed,
    world: Callable[[], str],
    address: Callable[[], str | None],
    interval_s: float,
    rows: Mapping[str, Sequence[Sequence[float]]],
    labels: Mapping[str, Sequence[int]],
    model: str,
    input_name: str,
    seed: int = 0,
) -> None:
    """Steady inference requests through the Service, one connection each, from the world
    `world()` names (the story switches it); each answered id's label is owed to its pod."""
    rng = random.Random(seed)
    sent = 0
    async with aiohttp.ClientSession() as session:
        while True:
            target = address()
            if target is not None:
                current = world()
                index = rng.randrange(len(rows[current]))
                request_id = f"traffic-{sent}"
                sent += 1
                version: str | None = None
                try:
                    async with session.post(
                        f"http://{target}/v2/models/{model}/infer",
                        json=request_body(input_name, rows[current][index], request_id),
                        headers={"Connection": "close"},
                        timeout=aiohttp.ClientTimeout(total=5),
                    ) as response:
                        if response.status == 200:
                            version = (await response.json()).get("model_version")
                            pod = response.headers.get(POD_HEADER)
                            if pod:
                                feed.owe(pod, request_id, int(labels[current][index]))
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    version = None
                traffic.record(version)
            await asyncio.sleep(interval_s)  # the traffic's pace


async def send_labels(
    feed: LabelFeed, kube: Kube, namespace: str, model: str, port_name: str = "http"
) -> None:
    """Every LABEL_DELAY_S, the owed labels to each pod's feedback endpoint."""
    async with aiohttp.ClientSession() as session:
        while True:
            await asyncio.sleep(LABEL_DELAY_S)  # the labels' delay and batching pace
            owed = feed.take()
            if not owed:
                continue
            try:
                pods = await kube.list("v1", "pods", namespace)
            except (KubeError, aiohttp.ClientError):
                pods = []  # the API may be stopping: these labels are lost, and counted
            addresses = feedback_addresses(pods, port_name)
            for pod, items in owed.items():
                if await _deliver(session, addresses.get(pod), model, items):
                    feed.delivered += len(items)
                else:
                    feed.undelivered += len(items)


async def _deliver(
    session: aiohttp.ClientSession,
    address: str | None,
    model: str,
    items: list[tuple[str, int]],
) -> bool:
    if address is None:
        return False
    body = {"request_ids": [i for i, _ in items], "labels": [label for _, label in items]}
    try:
        async with session.post(
            f"http://{address}/v2/models/{model}/feedback",
            json=body,
            timeout=aiohttp.ClientTimeout(total=5),
        ) as response:
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False
