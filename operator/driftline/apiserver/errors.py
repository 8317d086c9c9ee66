"""The Status objects kube-apiserver answers errors with."""

from __future__ import annotations

from typing import Any

from driftline.apiserver.resources import ResourceType


class ApiError(Exception):
    """An error with the HTTP status and the Status body a real API server would send."""

    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.body: dict[str, Any] | None = None  # a complete Status, when one was given

    @classmethod
    def from_status(cls, status: dict[str, Any]) -> ApiError:
        error = cls(status["code"], status["reason"], status["message"], status.get("details"))
        error.body = status
        return error

    def status(self) -> dict[str, Any]:
        if self.body is not None:
            return self.body
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            status["details"] = self.details
        return status


def _details(resource: ResourceType, name: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "kind": resource.plural}
    if resource.group:
        details["group"] = resource.group
    return details


def not_found(resource: ResourceType, name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'{resource.group_resource} "{name}" not found', _details(resource, name)
    )


def namespace_not_found(namespace: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'namespaces "{namespace}" not found',
        {"name": namespace, "kind": "namespaces"},
    )


def already_exists(resource: ResourceType, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{resource.group_resource} "{name}" already exists',
        _details(resource, name),
    )


def conflict(
    resource: ResourceType,
    name: str,
    why: str = "the object has been modified; please apply your changes to the latest version and try again",
) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {resource.group_resource} "{name}": {why}',
        _details(resource, name),
    )


def invalid(resource: ResourceType, name: str, field: str, reason: str, message: str) -> ApiError:
    kind = f"{resource.kind}.{resource.group}" if resource.custom else resource.kind
    details = {
        **_details(resource, name),
        "kind": resource.kind,
        "causes": [{"reason": reason, "message": message, "field": field}],
    }
    return ApiError(422, "Invalid", f'{kind} "{name}" is invalid: {field}: {message}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)
