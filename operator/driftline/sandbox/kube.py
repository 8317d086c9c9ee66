"""A small asyncio client of the Kubernetes API over HTTP, for the sandbox's kubelet,
controllers, router and story (the edge: everything else in the sandbox is pure).

Watches only wake the callers, which then list and reconcile from what the API holds
(level-triggered), so a dropped watch costs a re-list, never a missed change.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp


class KubeError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


def resource_path(api_version: str, plural: str, namespace: str | None, name: str = "") -> str:
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = base + (f"/namespaces/{namespace}" if namespace else "") + f"/{plural}"
    return path + (f"/{name}" if name else "")


class Kube:
    def __init__(self, server: str, token: str | None = None) -> None:
        self.server = server.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._session = aiohttp.ClientSession(headers=headers)

    async def close(self) -> None:
        await self._session.close()

    async def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
    ) -> Any:
        data = json.dumps(body) if body is not None else None
        async with self._session.request(
            method,
            self.server + path,
            data=data,
            params=params,
            headers={"Content-Type": content_type},
            timeout=aiohttp.ClientTimeout(total=30),
        ) as response:
            text = await response.text()
            if response.status >= 400:
                raise KubeError(response.status, text[:500])
            return json.loads(text) if text else None

    async def list(
        self,
        api_version: str,
        plural: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        params = {"labelSelector": label_selector} if label_selector else None
        body = await self._call("GET", resource_path(api_version, plural, namespace), params=params)
        items: list[dict[str, Any]] = body.get("items") or []
        return items

    async def get(
        self, api_version: str, plural: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = await self._call(
                "GET", resource_path(api_version, plural, namespace, name)
            )
        except KubeError as error:
            if error.status == 404:
                return None
            raise
        return found

    async def create(
        self, api_version: str, plural: str, namespace: str | None, body: dict[str, Any]
    ) -> dict[str, Any]:
        created: dict[str, Any] = await self._call(
            "POST", resource_path(api_version, plural, namespace), body
        )
        return created

    async def patch(
        self,
        api_version: str,
        plural: str,
        namespace: str | None,
        name: str,
        patch: dict[str, Any],
        *,
        subresource: str = "",
    ) -> dict[str, Any]:
        path = resource_path(api_version, plural, namespace, name)
        patched: dict[str, Any] = await self._call(
            "PATCH",
            path + (f"/{subresource}" if subresource else ""),
            patch,
            content_type="application/merge-patch+json",
        )
        return patched

    async def delete(self, api_version: str, plural: str, namespace: str | None, name: str) -> None:
        with contextlib.suppress(KubeError):
            await self._call("DELETE", resource_path(api_version, plural, namespace, name))

    async def watch_events(
        self, api_version: str, plural: str, namespace: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Watch events from now on, re-established when the stream ends."""
        while True:
            try:
                async with self._session.get(
                    self.server + resource_path(api_version, plural, namespace),
                    params={"watch": "true", "allowWatchBookmarks": "true"},
                    timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
                ) as response:
                    if response.status >= 400:
                        raise KubeError(response.status, await response.text())
                    async for line in response.content:
                        if line.strip():
                            yield json.loads(line)
            except (aiohttp.ClientError, KubeError, json.JSONDecodeError):
                await asyncio.sleep(0.5)  # backoff before watching again, not synchronisation


async def wake_on_changes(
    kube: Kube, kinds: list[tuple[str, str]], wake: Callable[[], None]
) -> None:
    """Call `wake` on every watch event of the given (apiVersion, plural) kinds."""

    async def one(api_version: str, plural: str) -> None:
        async for _ in kube.watch_events(api_version, plural):
            wake()

    await asyncio.gather(*(one(a, p) for a, p in kinds))
