"""The HTTP shell: kmock serves the network and discovery; resource requests come here.

kmock matches each request against its reactions and keeps a log of every request, which
is what makes it slow and ever-growing under load. Resource URLs therefore bypass both and
go straight to `Cluster`; everything else (discovery, /version, reactions a test adds with
kmock's DSL) still goes through kmock, whose log is trimmed after each request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp.web
import attrs
import kmock
import orjson
import yaml

from driftline.apiserver import discovery, errors, openapi, patching, protobuf, tables
from driftline.apiserver.access import REQUESTER, AccessControl
from driftline.apiserver.cluster import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    Cluster,
    FieldValidation,
)
from driftline.apiserver.controllers import Controllers
from driftline.apiserver.errors import ApiError
from driftline.apiserver.faults import FaultInjector, fault_status
from driftline.apiserver.gc import DeleteOptions
from driftline.apiserver.rbac import RequestAttributes, UserInfo
from driftline.apiserver.resources import VERBS, ResourceType
from driftline.apiserver.selectors import (
    SelectorError,
    object_filter,
    parse_field_selector,
    parse_label_selector,
)
from driftline.apiserver.store import Obj
from driftline.apiserver.tokens import bearer_token
from driftline.apiserver.watch import WatchOptions, WatchStream

KMOCK_LOG_LIMIT = 100
# kube-apiserver's MaxRequestBodyBytes: larger bodies are refused with 413 before decoding.
MAX_REQUEST_BODY_BYTES = 3 * 1024 * 1024
logger = logging.getLogger(__name__)
# Built-in kinds whose DELETE answers the deleted object rather than a Status (as upstream).
_RETURNS_DELETED_OBJECT = frozenset({("", "pods"), ("", "namespaces"), ("", "services")})


@dataclass(frozen=True)
class Route:
    group: str
    version: str
    plural: str
    namespace: str | None
    name: str | None
    subresource: str | None


def parse_route(path: str, is_namespaced: Callable[[str, str, str], bool]) -> Route | None:
    """Split a resource URL; None for discovery and other non-resource paths."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces" and is_namespaced(group, version, rest[2]):
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        return None
    return Route(
        group,
        version,
        rest[0],
        namespace,
        rest[1] if len(rest) > 1 else None,
        rest[2] if len(rest) > 2 else None,
    )


def json_response(
    body: Any, status: int = 200, warnings: list[str] | None = None
) -> aiohttp.web.Response:
    response = aiohttp.web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json"
    )
    for warning in warnings or ():
        response.headers.add("Warning", warning_header(warning))
    return response


def warning_header(text: str) -> str:
    """RFC 7234 warn-code 299 with the text quoted, as kube-apiserver sends warnings."""
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{quoted}"'


# Where a body read before routing is kept on the request (aiohttp requests are mappings).
READ_BODY = aiohttp.web.RequestKey("driftline.read_body", bytes)


def request_too_large(limit: int) -> ApiError:
    return ApiError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")


async def read_limited_body(raw: aiohttp.web.BaseRequest, limit: int) -> bytes:
    """The request body, or a 413 as soon as it is known to exceed `limit` bytes.

    Read from the stream rather than with `raw.read()`, whose own 1 MiB cap (aiohttp's
    client_max_size) would refuse bodies that kube-apiserver accepts, and with a 500."""
    if raw.content_length is not None and raw.content_length > limit:
        raise request_too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in raw.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise request_too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def accepts_json(accept: str | None) -> bool:
    """Whether an Accept header admits JSON (absent, */*, application/*, application/json)."""
    if not accept:
        return True
    for item in accept.split(","):
        media_type = item.split(";")[0].strip().lower()
        if media_type in ("*/*", "application/*", "application/json"):
            return True
    return False


def _truthy(value: str | None) -> bool:
    return value in ("true", "1", "True")


def name_from_field_selector(selector: str | None) -> str:
    """The name a list or watch is narrowed to by `metadata.name=<name>`, as kube-apiserver
    reads it for authorization (so resourceNames can allow a watch of one object)."""
    for requirement in (selector or "").split(","):
        key, operator, value = requirement.partition("==")
        if not operator:
            key, operator, value = requirement.partition("=")
        if operator and key.strip() == "metadata.name" and not key.endswith("!"):
            return value.strip()
    return ""


def request_attributes(
    user: UserInfo, route: Route, verb: str, query: Any, namespaced: bool
) -> RequestAttributes:
    """What RBAC sees of a resource request (upstream's RequestInfo)."""
    name = route.name or ""
    if not name and verb in ("list", "watch"):
        name = name_from_field_selector(query.get("fieldSelector"))
    namespace = route.namespace or ""
    if not namespaced and route.group == "" and route.plural == "namespaces":
        namespace = name  # a namespace is in itself: a RoleBinding there may grant reading it
    return RequestAttributes(
        user,
        verb,
        True,
        route.group,
        route.plural,
        route.subresource or "",
        namespace,
        name,
    )


@attrs.define(kw_only=True)
class ApiHandler(kmock.KubernetesScaffold):
    """A kmock handler with Kubernetes semantics for every resource URL."""

    cluster: Cluster = attrs.field(factory=Cluster)
    faults: FaultInjector = attrs.field(factory=FaultInjector)
    # Authentication and RBAC; None serves everyone everything (the default).
    access: AccessControl | None = None
    bookmark_interval: float = 60.0
    max_watch_seconds: float = 1800.0
    # Disconnected watch clients are noticed within this many seconds.
    liveness_interval: float = 2.0

    # Serialised OpenAPI documents by URL path, rebuilt after the registry changes.
    _openapi_cache: dict[str, bytes | None] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.cluster.resource_listeners.append(self.sync_discovery)
        self.sync_discovery()

    def sync_discovery(self) -> None:
        """Describe the registry's resources to kmock, which serves discovery from them."""
        self._openapi_cache.clear()
        self._resources.clear()
        for resource in self.cluster.registry:
            subresources = {
                name
                for name, on in (("status", resource.status), ("scale", resource.scale is not None))
                if on
            }
            self._resources[kmock.resource(resource.group, resource.version, resource.plural)] = (
                kmock.ResourceInfo(
                    namespaced=resource.namespaced,
                    kind=resource.kind,
                    singular=resource.singular,
                    verbs=set(VERBS),
                    shortnames=set(resource.short_names),
                    categories=set(resource.categories),
                    subresources=subresources,
                )
            )

    # kmock serves / and /version; the group and version documents come from the registry,
    # because kmock's would give subresources their parent's short names (kubectl then
    # cannot resolve `ns` or `mv`) and would pick a preferred version at random.
    async def _serve_apis(self, request: kmock.Request) -> dict[str, Any]:
        return discovery.group_list(self.cluster.registry)

    async def _serve_group(self, request: kmock.Request) -> dict[str, Any]:
        assert request.resource is not None
        group = request.resource.group or ""
        versions = discovery.group_versions(self.cluster.registry).get(group)
        if not versions:
            raise kmock.KubernetesResourceNotFoundError()
        return {"kind": "APIGroup", "apiVersion": "v1", **discovery.group_document(group, versions)}

    async def _serve_version(self, request: kmock.Request) -> dict[str, Any]:
        assert request.resource is not None
        document = discovery.resource_list(
            self.cluster.registry, request.resource.group or "", request.resource.version or ""
        )
        if document is None:
            raise kmock.KubernetesResourceNotFoundError()
        return document

    def _is_namespaced(self, group: str, version: str, plural: str) -> bool:
        resource = self.cluster.registry.get(group, version, plural)
        return resource is not None and resource.namespaced

    def _serve_openapi(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.Response:
        """/openapi/v2, /openapi/v3 and /openapi/v3/<group version>, in JSON only."""
        if raw.method not in ("GET", "HEAD"):
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        if not accepts_json(raw.headers.get("Accept")):
            # kube-apiserver also offers protobuf here; the local API offers JSON only, and
            # says so as kube-apiserver does for a media type it cannot produce.
            raise ApiError(
                406,
                "NotAcceptable",
                "only the following media types are accepted: application/json",
            )
        body = self._openapi_body(raw.path.rstrip("/"))
        if body is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return aiohttp.web.Response(body=body, content_type="application/json")

    def _openapi_body(self, path: str) -> bytes | None:
        if path not in self._openapi_cache:
            document = self._openapi_document(path)
            self._openapi_cache[path] = None if document is None else orjson.dumps(document)
        return self._openapi_cache[path]

    def _openapi_document(self, path: str) -> dict[str, Any] | None:
        resources = list(self.cluster.registry)
        if path == "/openapi/v2":
            return openapi.v2_document(resources)
        if path == "/openapi/v3":
            hashes = {}
            for group, version in openapi.served_group_versions(resources):
                key = openapi.group_version_path(group, version)
                body = self._openapi_body(f"/openapi/v3/{key}")
                assert body is not None  # a served group version has a document
                hashes[key] = openapi.content_hash(body)
            return openapi.v3_index(hashes)
        parts = path.removeprefix("/openapi/v3/").split("/")
        if parts[:1] == ["api"] and len(parts) == 2:
            return openapi.v3_document(resources, "", parts[1])
        if parts[:1] == ["apis"] and len(parts) == 3:
            return openapi.v3_document(resources, parts[1], parts[2])
        return None

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        if self.access is None:
            return await self._answer(raw_request)
        try:
            user = self.access.authenticate(bearer_token(raw_request.headers))
        except ApiError as exc:
            return json_response(exc.status(), exc.code)
        requester = REQUESTER.set(user)
        try:
            return await self._answer(raw_request)
        finally:
            REQUESTER.reset(requester)

    def _authorize_path(self, raw: aiohttp.web.BaseRequest) -> None:
        user = REQUESTER.get()
        if self.access is not None and user is not None:
            verb = raw.method.lower()
            self.access.authorize(RequestAttributes(user, verb, False, path=raw.path))

    async def _answer(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        if raw_request.path == "/openapi" or raw_request.path.startswith("/openapi/"):
            try:
                self._authorize_path(raw_request)
                return self._serve_openapi(raw_request)
            except ApiError as exc:
                return json_response(exc.status(), exc.code)
        route = parse_route(raw_request.path, self._is_namespaced)
        if route is None:
            try:
                self._authorize_path(raw_request)
            except ApiError as exc:
                return json_response(exc.status(), exc.code)
            try:
                return await super().__call__(raw_request)
            finally:
                del self._requests[:-KMOCK_LOG_LIMIT]
        try:
            return await self._serve(raw_request, route)
        except ApiError as exc:
            return json_response(exc.status(), exc.code)
        except Exception as exc:  # a bug here must reach the client as a Status, and the log
            logger.exception("internal error serving %s %s", raw_request.method, raw_request.path)
            return json_response(
                ApiError(500, "InternalError", f"Internal error occurred: {exc!r}").status(), 500
            )

    async def _serve(
        self, raw: aiohttp.web.BaseRequest, route: Route
    ) -> aiohttp.web.StreamResponse:
        resource = self.cluster.registry.get(route.group, route.version, route.plural)
        if resource is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        token_request = (
            self.access is not None
            and resource.storage_key == ("", "serviceaccounts")
            and route.subresource == "token"
        )
        if not token_request and (
            route.subresource not in (None, "status", "scale")
            or (route.subresource == "status" and not resource.status)
        ):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not accepts_json(raw.headers.get("Accept")):
            # Answers are JSON only; a client that accepts JSON too (kubectl lists it after
            # protobuf) gets JSON, as content negotiation with kube-apiserver would give it.
            raise ApiError(
                406,
                "NotAcceptable",
                "only the following media types are accepted: application/json",
            )
        verb = self._verb(raw.method, route, raw.query)
        user = REQUESTER.get()
        if self.access is not None and user is not None:
            self.access.authorize(
                request_attributes(user, route, verb, raw.query, resource.namespaced)
            )
        if resource.namespaced and route.namespace is None and verb not in ("list", "watch"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if token_request:
            return self._request_token(raw, route, verb, await self._body(raw, resource))
        name = route.name
        if verb == "create" and name is None and self.faults.selects_by_name():
            # A create names its object in the body, and a fault may be aimed at that name.
            try:
                sent = await read_limited_body(raw, MAX_REQUEST_BODY_BYTES)
                raw[READ_BODY] = sent  # the stream is spent: _body takes it from here
                name = (orjson.loads(sent).get("metadata") or {}).get("name")
            except (orjson.JSONDecodeError, AttributeError):
                name = None
        fault = self.faults.pick(verb, resource.plural, resource.group, route.namespace, name)
        if fault is not None:
            if fault.kind == "timeout":
                await asyncio.sleep(fault.hang_seconds)  # the simulated hang, then the 504
            code, body = fault_status(fault.kind)
            headers = {"Retry-After": "1"} if fault.kind == 429 else None
            return aiohttp.web.Response(
                body=orjson.dumps(body),
                status=code,
                content_type="application/json",
                headers=headers,
            )
        if verb == "watch":
            return await self._watch(raw, resource, route)
        if verb in ("list", "get"):
            return self._read(raw, resource, route, verb)
        return await self._write(raw, resource, route, verb)

    def _request_token(
        self, raw: aiohttp.web.BaseRequest, route: Route, verb: str, body: Any
    ) -> aiohttp.web.Response:
        """POST serviceaccounts/<name>/token: the TokenRequest API."""
        assert self.access is not None and route.namespace is not None and route.name
        if verb != "create":
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        return json_response(self.access.request_token(route.namespace, route.name, body), 201)

    def _read(
        self, raw: aiohttp.web.BaseRequest, resource: ResourceType, route: Route, verb: str
    ) -> aiohttp.web.Response:
        as_table = tables.wants_table(raw.headers.get("Accept"))
        if verb == "list":
            listed = self._list(resource, route, raw.query)
            if as_table:
                return json_response(
                    self._table(resource, listed["items"], listed["metadata"]["resourceVersion"])
                )
            return json_response(listed)
        assert route.name is not None  # a get names its object
        if route.subresource == "scale":
            return json_response(self.cluster.get_scale(resource, route.namespace, route.name))
        obj = self.cluster.get(resource, route.namespace, route.name)
        if as_table:
            return json_response(self._table(resource, [obj], obj["metadata"]["resourceVersion"]))
        return json_response(obj)

    @staticmethod
    def _table(resource: ResourceType, objects: list[Obj], resource_version: str) -> Any:
        if not resource.custom:
            printed = tables.builtin_table(
                resource.group, resource.plural, objects, resource_version
            )
            if printed is not None:
                return printed
        return tables.table(objects, resource.printer_columns, resource_version)

    async def _write(
        self, raw: aiohttp.web.BaseRequest, resource: ResourceType, route: Route, verb: str
    ) -> aiohttp.web.Response:
        cluster, query = self.cluster, raw.query
        body = await self._body(raw, resource)
        dry_run = query.get("dryRun")
        if dry_run is not None and (dry_run != "All" or verb != "create"):
            # Refused rather than ignored: a dry run that wrote would be worse than none.
            raise errors.bad_request(
                f"dryRun={dry_run} is supported only as dryRun=All on create by the local API"
            )
        validation = (
            FieldValidation.parse(query.get("fieldValidation"))
            if verb in ("create", "update", "patch")
            else None
        )
        warnings = validation.warnings if validation is not None else []
        if verb == "create":
            if route.subresource is not None or route.name is not None:
                raise ApiError(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                )
            new_object = cluster.create(
                resource,
                route.namespace,
                body,
                dry_run=dry_run is not None,
                field_validation=validation,
            )
            return json_response(new_object, 201, warnings)
        if verb == "deletecollection":
            labels, fields = self._selectors(resource, query)
            options = DeleteOptions.parse(body, query.get("propagationPolicy"))
            deleted = cluster.delete_collection(resource, route.namespace, labels, fields, options)
            metadata = {"resourceVersion": str(cluster.store.revision)}
            return json_response(
                {
                    "kind": f"{resource.kind}List",
                    "apiVersion": resource.api_version,
                    "metadata": metadata,
                    "items": deleted,
                }
            )
        name = route.name
        assert name is not None  # update, patch and delete name their object
        if verb == "update":
            if route.subresource == "scale":
                return json_response(cluster.set_scale(resource, route.namespace, name, body))
            replaced = cluster.replace(
                resource,
                route.namespace,
                name,
                body,
                subresource=route.subresource,
                field_validation=validation,
            )
            return json_response(replaced, 200, warnings)
        if verb == "patch":
            patch_type = (raw.content_type or "").split(";")[0].strip()
            if route.subresource == "scale":
                scale = self._patch_scale(
                    cluster.get_scale(resource, route.namespace, name), patch_type, body
                )
                return json_response(cluster.set_scale(resource, route.namespace, name, scale))
            obj, created = cluster.patch(
                resource,
                route.namespace,
                name,
                patch_type,
                body,
                subresource=route.subresource,
                field_manager=query.get("fieldManager"),
                force=_truthy(query.get("force")),
                field_validation=validation,
            )
            return json_response(obj, 201 if created else 200, warnings)
        obj = cluster.delete(
            resource,
            route.namespace,
            name,
            DeleteOptions.parse(body, query.get("propagationPolicy")),
        )
        still_there = (
            cluster.store.get(resource.storage_key, route.namespace or "", name) is not None
        )
        if still_there or resource.custom or resource.storage_key in _RETURNS_DELETED_OBJECT:
            return json_response(obj)
        details = {"name": name, "kind": resource.plural, "uid": obj["metadata"]["uid"]}
        if resource.group:
            details["group"] = resource.group
        return json_response(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": details,
            }
        )

    @staticmethod
    def _patch_scale(scale: Obj, patch_type: str, body: Any) -> Obj:
        try:
            if patch_type == JSON_PATCH:
                patched: Obj = patching.json_patch(scale, body)
                return patched
            if patch_type in (MERGE_PATCH, STRATEGIC_MERGE_PATCH):
                return patching.merge_patch(scale, body) if isinstance(body, dict) else scale
        except patching.PatchError as exc:
            raise ApiError(
                exc.status, "Invalid" if exc.status == 422 else "BadRequest", str(exc)
            ) from exc
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"unsupported patch type for the scale subresource: {patch_type}",
        )

    @staticmethod
    def _verb(method: str, route: Route, query: Any) -> str:
        if method == "GET":
            if _truthy(query.get("watch")):
                return "watch"
            return "get" if route.name is not None else "list"
        verbs = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
        verb = verbs.get(method)
        if verb is None:
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        if verb == "delete" and route.name is None:
            return "deletecollection"
        if verb in ("update", "patch") and route.name is None:
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        return verb

    @staticmethod
    async def _body(raw: aiohttp.web.BaseRequest, resource: ResourceType) -> Any:
        data = raw.get(READ_BODY)
        if data is None:
            data = await read_limited_body(raw, MAX_REQUEST_BODY_BYTES)
        if not data:
            return None
        content_type = (raw.content_type or "").lower()
        if content_type == protobuf.MEDIA_TYPE and not resource.custom:
            # kubectl's typed commands send built-in kinds as protobuf, with no way to ask
            # for JSON; kube-apiserver reads them, so the local API does too.
            try:
                return protobuf.decode_object(data)
            except protobuf.ProtobufError as exc:
                raise ApiError(
                    415, "UnsupportedMediaType", f"cannot read the protobuf body: {exc}; send JSON"
                ) from exc
        if "protobuf" in content_type or "cbor" in content_type:
            accepted = "application/json, application/yaml"
            if not resource.custom:
                accepted += ", application/vnd.kubernetes.protobuf"
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types include: {accepted}",
            )
        if content_type.startswith(APPLY_PATCH):
            return data
        if content_type in ("application/yaml", "application/x-yaml"):
            try:
                return yaml.safe_load(data)
            except yaml.YAMLError as exc:
                raise errors.bad_request(f"the request body is not valid YAML: {exc}") from exc
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise errors.bad_request(f"the request body is not valid JSON: {exc}") from exc

    @staticmethod
    def _selectors(resource: ResourceType, query: Any) -> tuple[Any, Any]:
        try:
            labels = parse_label_selector(query.get("labelSelector"))
            fields = parse_field_selector(query.get("fieldSelector"), resource.field_selectable)
        except SelectorError as exc:
            raise errors.bad_request(str(exc)) from exc
        return labels, fields

    def _list(self, resource: ResourceType, route: Route, query: Any) -> dict[str, Any]:
        labels, fields = self._selectors(resource, query)
        items = self.cluster.list_objects(resource, route.namespace, labels, fields)
        metadata: dict[str, Any] = {"resourceVersion": str(self.cluster.store.revision)}
        token = query.get("continue")
        if token:
            # The continue token is the namespace/name of the last object sent.
            items = [
                o
                for o in items
                if (o["metadata"].get("namespace") or "") + "/" + o["metadata"]["name"] > token
            ]
        limit = int(query.get("limit") or 0)
        if limit > 0 and len(items) > limit:
            last = items[limit - 1]["metadata"]
            metadata["continue"] = (last.get("namespace") or "") + "/" + last["name"]
            metadata["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        return {
            "kind": f"{resource.kind}List",
            "apiVersion": resource.api_version,
            "metadata": metadata,
            "items": items,
        }

    async def _watch(
        self, raw: aiohttp.web.BaseRequest, resource: ResourceType, route: Route
    ) -> aiohttp.web.StreamResponse:
        labels, fields = self._selectors(resource, raw.query)
        if route.name is not None:
            fields = (
                *fields,
                *parse_field_selector(f"metadata.name={route.name}", resource.field_selectable),
            )
        matches = object_filter(labels, fields)
        namespace = route.namespace

        def predicate(obj: Obj) -> bool:
            in_namespace = namespace is None or obj["metadata"].get("namespace") == namespace
            return in_namespace and matches(obj)

        options = WatchOptions.parse(raw.query, self.max_watch_seconds)
        stream = WatchStream(
            raw,
            self.cluster.store,
            resource,
            predicate,
            options,
            self.bookmark_interval,
            self.liveness_interval,
        )
        return await stream.run()


class LocalApiServer:
    """The handler on a loopback port: `async with LocalApiServer() as server: server.url`."""

    def __init__(
        self, handler: ApiHandler | None = None, port: int | None = None, host: str = "127.0.0.1"
    ) -> None:
        # not `handler or ...`: a kmock handler is falsy until it has logged a request
        self.handler = handler if handler is not None else ApiHandler()
        self.controllers = Controllers(self.handler.cluster)
        self._server = kmock.Server(self.handler, host=host, port=port)

    @property
    def cluster(self) -> Cluster:
        return self.handler.cluster

    @property
    def faults(self) -> FaultInjector:
        return self.handler.faults

    @property
    def url(self) -> str:
        return str(self._server.url).rstrip("/")

    @property
    def port(self) -> int:
        return self._server.port

    async def __aenter__(self) -> LocalApiServer:
        await self.handler.__aenter__()
        await self._server.__aenter__()
        await self.controllers.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.controllers.stop()
        self.cluster.store.close_watchers()
        await self._server.__aexit__(*exc_info)
        await self.handler.__aexit__(*exc_info)


@contextlib.asynccontextmanager
async def serving(
    port: int | None = None, handler: ApiHandler | None = None
) -> AsyncIterator[LocalApiServer]:
    async with LocalApiServer(handler, port=port) as server:
        yield server
