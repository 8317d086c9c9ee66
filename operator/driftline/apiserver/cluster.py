"""The Kubernetes API semantics over the store: what each verb does, independent of HTTP."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import yaml

from driftline.apiserver import apply, errors, gc, metadata, patching, scale
from driftline.apiserver.collector import GarbageCollector
from driftline.apiserver.errors import ApiError
from driftline.apiserver.gc import DeleteOptions
from driftline.apiserver.resources import CrdError, Registry, ResourceType
from driftline.apiserver.selectors import FieldSelector, Selector, object_filter
from driftline.apiserver.store import Event, Obj, ObjectKey, Store

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (MERGE_PATCH, JSON_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)
CRD_STORAGE = ("apiextensions.k8s.io", "customresourcedefinitions")
NAMESPACE_STORAGE = ("", "namespaces")
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

# A mutating admission step: (resource, stored object or None, object about to be written).
Admission = Callable[[ResourceType, Obj | None, Obj], Obj]
Validator = Callable[[ResourceType, Obj, Obj | None], Obj]


def validate_custom_object(resource: ResourceType, obj: Obj, old: Obj | None) -> Obj:
    """Prune, default and validate a custom object against its CRD schema (422 when invalid)."""
    if resource.schema is None:
        return obj
    # Imported here so the server still starts if the validation module is being rewritten.
    from driftline.api.validation import invalid_status, prepare_custom_object

    prepared, problems = prepare_custom_object(resource.schema, obj, old)
    if problems:
        name = obj["metadata"].get("name", "")
        raise ApiError.from_status(invalid_status(resource.kind, resource.group, name, problems))
    return prepared


FIELD_VALIDATION_DIRECTIVES = ("Ignore", "Warn", "Strict")


@dataclass
class FieldValidation:
    """A write's `fieldValidation`: what to do with fields the schema does not declare.

    Ignore drops them silently (pruning), Warn drops them and says so in `warnings` (the
    server sends them as `Warning` headers), Strict refuses the write."""

    directive: str = "Warn"
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, value: str | None) -> FieldValidation:
        """kube-apiserver's default is Warn; any other value than the three is refused."""
        if value is None or value == "":
            return cls()
        if value not in FIELD_VALIDATION_DIRECTIVES:
            raise errors.bad_request(
                f'fieldValidation must be one of "Ignore", "Warn" or "Strict"; got {value!r}'
            )
        return cls(value)


class Cluster:
    def __init__(
        self,
        store: Store | None = None,
        registry: Registry | None = None,
        validator: Validator = validate_custom_object,
    ) -> None:
        self.store = store or Store()
        self.registry = registry or Registry()
        self.validator = validator
        self.admissions: list[Admission] = [_default_builtin_fields]
        self.resource_listeners: list[Callable[[], None]] = []
        self._uids: dict[str, ObjectKey] = {}
        # Each kind's published schema, for field validation; reset when CRDs change.
        self._field_schemas: dict[tuple[str, str, str], dict[str, Any] | None] = {}
        self.collector = GarbageCollector(self)
        self.store.listen(self._index_uid)
        for name in DEFAULT_NAMESPACES:
            self.create(self.resource("", "v1", "namespaces"), None, {"metadata": {"name": name}})

    def _index_uid(self, event: Event) -> None:
        uid = event.obj["metadata"]["uid"]
        if event.type == "DELETED":
            self._uids.pop(uid, None)
        else:
            meta = event.obj["metadata"]
            self._uids[uid] = (
                event.storage[0],
                event.storage[1],
                meta.get("namespace") or "",
                meta["name"],
            )

    def uid_exists(self, uid: str) -> bool:
        return uid in self._uids

    def key_of_uid(self, uid: str) -> ObjectKey | None:
        return self._uids.get(uid)

    def resource(self, group: str, version: str, plural: str) -> ResourceType:
        found = self.registry.get(group, version, plural)
        if found is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return found

    def type_of(self, key: ObjectKey) -> ResourceType | None:
        return next((r for r in self.registry if r.storage_key == (key[0], key[1])), None)

    # --- reading ----------------------------------------------------------------------

    def get(self, resource: ResourceType, namespace: str | None, name: str) -> Obj:
        obj = self.store.get(resource.storage_key, namespace or "", name)
        if obj is None:
            raise errors.not_found(resource, name)
        return self._as_version(resource, obj)

    def list_objects(
        self,
        resource: ResourceType,
        namespace: str | None,
        labels: Selector = (),
        fields: FieldSelector = (),
    ) -> list[Obj]:
        matches = object_filter(labels, fields)
        return [
            self._as_version(resource, o)
            for o in self.store.list_objects(resource.storage_key, namespace)
            if matches(o)
        ]

    @staticmethod
    def _as_version(resource: ResourceType, obj: Obj) -> Obj:
        if obj.get("apiVersion") == resource.api_version:
            return obj
        return {**obj, "apiVersion": resource.api_version}

    # --- field validation -------------------------------------------------------------

    def unknown_fields(
        self, resource: ResourceType, obj: Obj, *, remove: bool = False
    ) -> list[str]:
        """Fields of `obj` its kind's schema does not declare (empty for undescribed kinds);
        with `remove`, they are deleted from `obj` too."""
        from driftline.api.validation import unknown_fields  # as for validate_custom_object
        from driftline.apiserver import builtin_schemas, openapi

        key = (resource.group, resource.version, resource.plural)
        if key not in self._field_schemas:
            self._field_schemas[key] = openapi.object_schema([resource], resource)
        schema = self._field_schemas[key]
        if schema is None:
            return []
        return unknown_fields(schema, obj, builtin_schemas.builtin_definitions(), remove=remove)

    def _check_fields(
        self,
        resource: ResourceType,
        obj: Any,
        validation: FieldValidation | None,
        *,
        applied: bool = False,
    ) -> Any:
        """Field validation of a write: refuse (Strict) or note (Warn) undeclared fields.

        Returns the object to write: for a built-in kind without its undeclared fields (a
        copy, when there were any), as decoding into Go types drops them; a custom kind's
        are pruned later, by schema validation."""
        if validation is None or not isinstance(obj, dict):
            return obj
        if validation.directive == "Ignore" and resource.custom:
            return obj
        unknown = self.unknown_fields(resource, obj)
        if not unknown:
            return obj
        if validation.directive == "Strict":
            if applied:  # server-side apply reports it while typing the applied configuration
                gvk = f"{resource.api_version}, Kind={resource.kind}"
                if not resource.group:
                    gvk = "/" + gvk
                declared = ", ".join(f".{path}: field not declared in schema" for path in unknown)
                raise errors.bad_request(f"failed to create typed patch object ({gvk}): {declared}")
            listed = ", ".join(f'unknown field "{path}"' for path in unknown)
            raise errors.bad_request(
                f'{resource.kind} in version "{resource.version}" cannot be handled as a '
                f"{resource.kind}: strict decoding error: {listed}"
            )
        if validation.directive == "Warn":
            validation.warnings.extend(f'unknown field "{path}"' for path in unknown)
        if not resource.custom:
            obj = _fresh_copy(obj)
            self.unknown_fields(resource, obj, remove=True)
        return obj

    # --- creating ---------------------------------------------------------------------

    def create(
        self,
        resource: ResourceType,
        namespace: str | None,
        body: Any,
        *,
        dry_run: bool = False,
        managed_fields: list[dict[str, Any]] | None = None,
        field_validation: FieldValidation | None = None,
    ) -> Obj:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        body = self._check_fields(resource, body, field_validation)
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        self._check_kind(resource, obj)
        obj["apiVersion"], obj["kind"] = resource.api_version, resource.kind
        if resource.namespaced:
            body_namespace = meta.get("namespace")
            if namespace and body_namespace and body_namespace != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            namespace = namespace or body_namespace or "default"
            if self.store.get(NAMESPACE_STORAGE, "", namespace) is None:
                raise errors.namespace_not_found(namespace)
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise errors.invalid(
                    resource,
                    "",
                    "metadata.name",
                    "FieldValueRequired",
                    "Required value: name or generateName is required",
                )
            meta["name"] = metadata.generated_name(meta["generateName"])
            while self.store.get(resource.storage_key, namespace or "", meta["name"]) is not None:
                meta["name"] = metadata.generated_name(meta["generateName"])
        name = meta["name"]
        if problem := metadata.name_problem(name, resource.storage_key):
            raise errors.invalid(
                resource,
                name,
                "metadata.name",
                "FieldValueInvalid",
                f"Invalid value: {name!r}: {problem}",
            )
        if self.store.get(resource.storage_key, namespace or "", name) is not None:
            raise errors.already_exists(resource, name)
        if meta.get("resourceVersion"):
            raise errors.bad_request("resourceVersion should not be set on objects to be created")
        for key in (*metadata.SERVER_METADATA, "resourceVersion", "selfLink"):
            meta.pop(key, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = metadata.now()
        meta["generation"] = 1
        if managed_fields:
            meta["managedFields"] = managed_fields
        if resource.status:
            obj.pop("status", None)  # status is written through the status subresource only
        obj = self._admit(resource, None, obj)
        if dry_run:
            return obj
        self._before_commit(resource, obj)
        stored = self.store.put(resource.storage_key, obj).obj
        self.collector.after_write(resource, stored)
        return stored

    @staticmethod
    def _check_kind(resource: ResourceType, obj: Obj) -> None:
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if kind is not None and kind != resource.kind:
            raise errors.bad_request(
                f"the kind of the object ({kind}) does not match the kind of the URL ({resource.kind})"
            )
        if api_version is not None and api_version != resource.api_version:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version ({resource.api_version})"
            )

    def _admit(self, resource: ResourceType, old: Obj | None, obj: Obj) -> Obj:
        for admission in self.admissions:
            obj = admission(resource, old, obj)
        if resource.custom:
            obj = self.validator(resource, obj, old)
        return obj

    def _before_commit(self, resource: ResourceType, obj: Obj) -> None:
        if resource.storage_key == CRD_STORAGE:
            self._register_crd(resource, obj)

    def _register_crd(self, resource: ResourceType, crd: Obj) -> None:
        self._field_schemas.clear()
        try:
            types = self.registry.register_crd(crd)
        except CrdError as exc:
            raise errors.invalid(
                resource, crd["metadata"]["name"], "spec", "FieldValueInvalid", str(exc)
            ) from exc
        names = crd["spec"]["names"]
        crd["status"] = {
            "acceptedNames": {
                k: names[k]
                for k in ("kind", "listKind", "plural", "singular", "shortNames", "categories")
                if k in names
            },
            "storedVersions": [v["name"] for v in crd["spec"]["versions"] if v.get("storage")]
            or [types[0].version],
            "conditions": [
                {
                    "type": t,
                    "status": "True",
                    "reason": r,
                    "message": m,
                    "lastTransitionTime": metadata.now(),
                }
                for t, r, m in (
                    ("NamesAccepted", "NoConflicts", "no conflicts found"),
                    ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
                )
            ],
        }
        for listener in self.resource_listeners:
            listener()

    # --- updating ---------------------------------------------------------------------

    def replace(
        self,
        resource: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        field_validation: FieldValidation | None = None,
    ) -> Obj:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        old = self.get(resource, namespace, name)
        body_name = (body.get("metadata") or {}).get("name")
        if body_name and body_name != name:
            raise errors.bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL ({name})"
            )
        self._check_kind(resource, body)
        body_version = (body.get("metadata") or {}).get("resourceVersion")
        if not body_version and resource.custom:
            raise errors.invalid(
                resource,
                name,
                "metadata.resourceVersion",
                "FieldValueInvalid",
                "Invalid value: 0x0: must be specified for an update",
            )
        body = self._check_fields(resource, body, field_validation)
        return self._update(resource, old, copy.deepcopy(body), subresource)

    def patch(
        self,
        resource: ResourceType,
        namespace: str | None,
        name: str,
        patch_type: str,
        body: bytes | Any,
        *,
        subresource: str | None = None,
        field_manager: str | None = None,
        force: bool = False,
        field_validation: FieldValidation | None = None,
    ) -> tuple[Obj, bool]:
        """Apply a patch; return the object and whether it was created (server-side apply only)."""
        if patch_type not in PATCH_TYPES:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types include: {', '.join(PATCH_TYPES)}",
            )
        if patch_type == APPLY_PATCH:
            return self._apply(
                resource, namespace, name, body, subresource, field_manager, force, field_validation
            )
        old = self.get(resource, namespace, name)
        try:
            if patch_type == MERGE_PATCH:
                if not isinstance(body, dict):
                    raise errors.bad_request("merge patch must be a JSON object")
                candidate = patching.merge_patch(old, body)
            elif patch_type == JSON_PATCH:
                candidate = patching.json_patch(old, body)
            else:
                if resource.custom:
                    raise ApiError(
                        415,
                        "UnsupportedMediaType",
                        "strategic merge patch is not supported for custom resources; use a JSON merge patch",
                    )
                candidate = patching.strategic_merge_patch(old, body)
        except patching.PatchError as exc:
            raise ApiError(
                exc.status, "Invalid" if exc.status == 422 else "BadRequest", str(exc)
            ) from exc
        if not isinstance(candidate, dict) or not isinstance(candidate.get("metadata"), dict):
            raise errors.bad_request("the patch would make the object not an object")
        candidate = self._check_fields(resource, candidate, field_validation)
        return self._update(resource, old, candidate, subresource), False

    def _apply(
        self,
        resource: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        subresource: str | None,
        manager: str | None,
        force: bool,
        field_validation: FieldValidation | None = None,
    ) -> tuple[Obj, bool]:
        if not manager:
            raise errors.bad_request(
                "PATCH requests with an apply patch must have fieldManager set"
            )
        config = yaml.safe_load(body) if isinstance(body, bytes | str) else body
        if not isinstance(config, dict):
            raise errors.bad_request("the applied configuration must be an object")
        self._check_kind(resource, config)
        config = self._check_fields(resource, config, field_validation, applied=True)
        if (config.get("metadata") or {}).get("name", name) != name:
            raise errors.bad_request(
                "the name of the applied configuration does not match the name on the URL"
            )
        existing = self.store.get(resource.storage_key, namespace or "", name)
        live: Obj = copy.deepcopy(existing) if existing else {"metadata": {"name": name}}
        managers = apply.managers_of(live)
        try:
            merged, new_managers = apply.server_side_apply(
                live, config, manager, managers, force=force
            )
        except apply.ApplyConflict as exc:
            raise ApiError(
                409,
                "Conflict",
                str(exc),
                {
                    "causes": [
                        {
                            "reason": "FieldManagerConflict",
                            "message": f'conflict with "{m}"',
                            "field": "." + ".".join(p),
                        }
                        for m, p in exc.conflicts
                    ]
                },
            ) from exc
        merged["metadata"]["managedFields"] = apply.managed_fields_entries(
            resource.api_version, new_managers, live
        )
        if existing is None:
            fields = merged["metadata"]["managedFields"]
            return self.create(
                resource, namespace, _strip_server_metadata(merged), managed_fields=fields
            ), True
        merged["metadata"].pop("resourceVersion", None)
        applied_version = (config.get("metadata") or {}).get("resourceVersion")
        if applied_version:
            merged["metadata"]["resourceVersion"] = applied_version
        return self._update(
            resource, existing, merged, subresource, keep_managed_fields=False
        ), False

    def _update(
        self,
        resource: ResourceType,
        old: Obj,
        candidate: Obj,
        subresource: str | None,
        *,
        keep_managed_fields: bool = True,
    ) -> Obj:
        name = old["metadata"]["name"]
        sent_version = (candidate.get("metadata") or {}).get("resourceVersion")
        if sent_version and sent_version != old["metadata"]["resourceVersion"]:
            raise errors.conflict(resource, name)
        if subresource == "status":
            new = (
                {**old, "status": candidate.get("status")}
                if candidate.get("status") is not None
                else {k: v for k, v in old.items() if k != "status"}
            )
        else:
            if not isinstance(candidate.get("metadata"), dict):
                raise errors.bad_request("metadata must be an object")
            managed = candidate["metadata"].get("managedFields")
            new = {**candidate, "apiVersion": resource.api_version, "kind": resource.kind}
            new["metadata"] = metadata.keep_server_metadata(old, candidate["metadata"])
            if not keep_managed_fields and managed is not None:
                new["metadata"]["managedFields"] = managed
            if resource.status:
                if "status" in old:
                    new["status"] = old["status"]
                else:
                    new.pop("status", None)
            self._check_finalizers(resource, old, new)
        new = _fresh_copy(new)  # admission and validation may change it; the stored `old` must not
        new["metadata"].pop("resourceVersion", None)
        new = self._admit(resource, old, new)
        new["metadata"]["generation"] = metadata.next_generation(old, new)
        unchanged = {
            **new,
            "metadata": {**new["metadata"], "resourceVersion": old["metadata"]["resourceVersion"]},
        }
        if unchanged == old:
            return old  # a no-op write changes nothing: no new resourceVersion, no watch event
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            return self.remove_now(resource, new)
        self._before_commit(resource, new)
        stored = self.store.put(resource.storage_key, new).obj
        self.collector.after_write(resource, stored)
        return stored

    @staticmethod
    def _check_finalizers(resource: ResourceType, old: Obj, new: Obj) -> None:
        if not old["metadata"].get("deletionTimestamp"):
            return
        added = set(new["metadata"].get("finalizers") or []) - set(
            old["metadata"].get("finalizers") or []
        )
        if added:
            raise errors.invalid(
                resource,
                old["metadata"]["name"],
                "metadata.finalizers",
                "FieldValueForbidden",
                f"Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {sorted(added)!r}",
            )

    # --- deleting ---------------------------------------------------------------------

    def delete(
        self,
        resource: ResourceType,
        namespace: str | None,
        name: str,
        options: DeleteOptions | None = None,
    ) -> Obj:
        options = options or DeleteOptions()
        obj = self.get(resource, namespace, name)
        meta = obj["metadata"]
        if options.precondition_uid and options.precondition_uid != meta["uid"]:
            raise errors.conflict(
                resource,
                name,
                f"Precondition failed: UID in precondition: {options.precondition_uid}, UID in object meta: {meta['uid']}",
            )
        if (
            options.precondition_resource_version
            and options.precondition_resource_version != meta["resourceVersion"]
        ):
            raise errors.conflict(
                resource,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        finalizers = list(meta.get("finalizers") or [])
        dependents = self.store.dependents(meta["uid"])
        if (
            options.propagation == "Foreground"
            and dependents
            and gc.FOREGROUND_FINALIZER not in finalizers
        ):
            finalizers.append(gc.FOREGROUND_FINALIZER)
        if options.propagation == "Orphan":
            self.collector.orphan_dependents(meta["uid"])
        if finalizers:
            if meta.get("deletionTimestamp") and finalizers == meta.get("finalizers"):
                return obj  # already being deleted; deleting again changes nothing
            marked = {
                **obj,
                "metadata": {
                    **meta,
                    "finalizers": finalizers,
                    "deletionTimestamp": meta.get("deletionTimestamp") or metadata.now(),
                    "deletionGracePeriodSeconds": 0,
                },
            }
            marked["metadata"].pop("resourceVersion")
            stored = self.store.put(resource.storage_key, marked).obj
            if gc.FOREGROUND_FINALIZER in finalizers:
                self.collector.delete_dependents(meta["uid"], "Foreground")
                self.collector.release_foreground(resource.storage_key, stored)
            return self.store.get(resource.storage_key, namespace or "", name) or stored
        return self.remove_now(resource, obj)

    def delete_collection(
        self,
        resource: ResourceType,
        namespace: str | None,
        labels: Selector,
        fields: FieldSelector,
        options: DeleteOptions,
    ) -> list[Obj]:
        return [
            self.delete(resource, o["metadata"].get("namespace"), o["metadata"]["name"], options)
            for o in self.list_objects(resource, namespace, labels, fields)
        ]

    def remove_now(self, resource: ResourceType, obj: Obj) -> Obj:
        meta = obj["metadata"]
        event = self.store.remove(resource.storage_key, meta.get("namespace") or "", meta["name"])
        if event is None:
            return obj
        if resource.storage_key == CRD_STORAGE:
            self._unregister_crd(obj)
        if resource.storage_key == NAMESPACE_STORAGE:
            self._empty_namespace(meta["name"])
        self.collector.after_removal(obj)
        return event.obj

    def _unregister_crd(self, crd: Obj) -> None:
        self._field_schemas.clear()
        for gone in self.registry.unregister_crd(crd["metadata"]["name"]):
            self.store.close_watchers(gone.storage_key)
            self.store.drop_storage(gone.storage_key)
        for listener in self.resource_listeners:
            listener()

    def _empty_namespace(self, namespace: str) -> None:
        for resource in {r.storage_key: r for r in self.registry if r.namespaced}.values():
            for obj in self.store.list_objects(resource.storage_key, namespace):
                self.remove_now(resource, obj)

    # --- subresources -----------------------------------------------------------------

    def get_scale(self, resource: ResourceType, namespace: str | None, name: str) -> Obj:
        if resource.scale is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return scale.scale_of(resource.scale, self.get(resource, namespace, name))

    def set_scale(self, resource: ResourceType, namespace: str | None, name: str, body: Any) -> Obj:
        if resource.scale is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        obj = self.get(resource, namespace, name)
        try:
            candidate = scale.scaled(resource.scale, obj, body)
        except ValueError as exc:
            raise errors.bad_request(str(exc)) from exc
        self._update(resource, obj, candidate, None)
        return self.get_scale(resource, namespace, name)

    # --- writes by the server's own controllers ---------------------------------------

    def write_status(self, resource: ResourceType, obj: Obj, status: dict[str, Any]) -> Obj | None:
        """Set status on the stored object unless it changed since `obj` was read."""
        current = self.store.get(
            resource.storage_key, obj["metadata"].get("namespace") or "", obj["metadata"]["name"]
        )
        if current is None or current["metadata"]["uid"] != obj["metadata"]["uid"]:
            return None
        return self._update(resource, current, {**current, "status": status}, "status")


def _fresh_copy(obj: Obj) -> Obj:
    """A deep copy that shares nothing with stored objects (orjson is several times faster than deepcopy)."""
    copied: Obj = orjson.loads(orjson.dumps(obj))
    return copied


def _strip_server_metadata(obj: Obj) -> Obj:
    meta = {
        k: v for k, v in obj["metadata"].items() if k not in ("managedFields", "resourceVersion")
    }
    return {**obj, "metadata": meta}


def _default_builtin_fields(resource: ResourceType, old: Obj | None, obj: Obj) -> Obj:
    """The few defaults of built-in kinds that our operator and its tests read back."""
    if resource.storage_key == NAMESPACE_STORAGE and old is None:
        obj["status"] = {"phase": "Active"}
    if resource.kind in ("Deployment", "ReplicaSet") and resource.group == "apps":
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            spec.setdefault("replicas", 1)
    return obj
