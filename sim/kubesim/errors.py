"""kubesim's exception hierarchy: every error the API answers is an `ApiError` carrying a real `Status` body."""

from __future__ import annotations

from typing import Any


class KubeSimError(Exception):
    """Base of every kubesim error."""


class ApiError(KubeSimError):
    """An error the API server answers with a `metav1.Status` body.

    `reason` follows the real server (`NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, ...): clients test the reason,
    not only the code.
    """

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _res(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    details: dict[str, Any] = {"name": name, "kind": resource}
    if group:
        details["group"] = group
    return ApiError(404, "NotFound", f'{_res(resource, group)} "{name}" not found', details=details)


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    details: dict[str, Any] = {"name": name, "kind": resource}
    if group:
        details["group"] = group
    return ApiError(409, "AlreadyExists", f'{_res(resource, group)} "{name}" already exists', details=details)


def conflict(resource: str, name: str, group: str = "", why: str = "") -> ApiError:
    details: dict[str, Any] = {"name": name, "kind": resource}
    if group:
        details["group"] = group
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    message = f'Operation cannot be fulfilled on {_res(resource, group)} "{name}": {why}'
    return ApiError(409, "Conflict", message, details=details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed(message: str = "the server does not allow this method on the requested resource") -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def unsupported_media_type(content_type: str) -> ApiError:
    """415 for a patch type the resource does not take (strategic merge on custom resources, unknown types)."""
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml "
        f"(got {content_type})",
    )


def forbidden(message: str) -> ApiError:
    return ApiError(403, "Forbidden", message)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


class FieldError:
    """One `field.Error` of the real server: a path, a type (reason) and the message detail."""

    def __init__(self, field: str, reason: str, message: str) -> None:
        self.field = field
        self.reason = reason
        self.message = message

    def __repr__(self) -> str:
        return f"FieldError({self.field!r}, {self.reason!r}, {self.message!r})"

    def text(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


def invalid(kind: str, name: str, group: str, errors: list[FieldError]) -> ApiError:
    """422 `Invalid` with field causes, worded like the real server: `Kind.group "name" is invalid: path: detail`."""
    qualified = f"{kind}.{group}" if group else kind
    summary = errors[0].text() if len(errors) == 1 else "[" + ", ".join(e.text() for e in errors) + "]"
    details: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "causes": [{"reason": e.reason, "message": e.message, "field": e.field} for e in errors],
    }
    if group:
        details["group"] = group
    return ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {summary}', details=details)
