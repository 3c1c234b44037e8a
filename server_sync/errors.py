"""The server's errors; each knows its HTTP status and machine code.

    protocol.errors.ServerError
    └── HttpError                   500 internal            base: status, code, details
        ├── InvalidRequest          400 invalid_request     an admin request's body or query
        ├── Unauthorized            401 unauthorized        no or unknown bearer token
        │   └── AdminUnauthorized   401 admin_unauthorized  no token, or one no admin holds
        ├── Forbidden               403 forbidden
        │   ├── DeviceRevoked       403 device_revoked      the device was revoked
        │   ├── WrongDevice         403 wrong_device        a batch sent as another device
        │   ├── DeviceToken         403 device_token        a device's token on an admin endpoint
        │   ├── AdminRevoked        403 admin_revoked       the admin credential was revoked
        │   └── RoleRequired        403 role_required       a viewer asked for an admin's action
        ├── NotFound                404 not_found
        │   └── UnknownDevice       404 unknown_device      no device with that id
        ├── Conflict                409 command_conflict    another command on that entry is open
        ├── PayloadTooLarge         413 payload_too_large
        ├── UnsupportedMediaType    415 unsupported_media_type
        ├── RateLimited             429 rate_limited        over the load-shedding limit
        └── Unavailable             503 unavailable         database down or busy (retryable)

An error with ``retry_after`` (seconds) is answered with that Retry-After header.

Errors of the wire format come from ``protocol.errors``: ProtocolError renders as
400 ``malformed_batch``, UnsupportedVersion as 426 ``upgrade_required``.
"""

from __future__ import annotations

from typing import Any

from protocol.errors import ServerError


class HttpError(ServerError):
    """A server error with an HTTP status, a machine code and optional details."""

    status = 500
    code = "internal"
    retry_after: int | None = None

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class InvalidRequest(HttpError):
    """An admin request whose body or query string the server refuses (details: fields)."""

    status = 400
    code = "invalid_request"


class Unauthorized(HttpError):
    """No bearer token, or one no device holds."""

    status = 401
    code = "unauthorized"


class AdminUnauthorized(Unauthorized):
    """An admin endpoint without a bearer token, or with one no admin holds."""

    code = "admin_unauthorized"


class Forbidden(HttpError):
    """The caller is known but may not do this."""

    status = 403
    code = "forbidden"


class DeviceRevoked(Forbidden):
    """The device's enrolment was revoked; its data stays on the server."""

    code = "device_revoked"


class WrongDevice(Forbidden):
    """A device tried to submit a batch as another device."""

    code = "wrong_device"


class DeviceToken(Forbidden):
    """A device's token on an admin endpoint: device credentials never read admin data."""

    code = "device_token"


class AdminRevoked(Forbidden):
    """The admin credential was revoked."""

    code = "admin_revoked"


class RoleRequired(Forbidden):
    """The admin's role does not allow this (a viewer reads; only an admin acts)."""

    code = "role_required"


class NotFound(HttpError):
    """No such resource (a path, a device)."""

    status = 404
    code = "not_found"


class UnknownDevice(NotFound):
    """No enrolled device has that id."""

    code = "unknown_device"


class Conflict(HttpError):
    """Another command for the same entry is still open (pending or delivered)."""

    status = 409
    code = "command_conflict"


class PayloadTooLarge(HttpError):
    """The request body is larger than the server accepts."""

    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(HttpError):
    """A Content-Type or Content-Encoding the server does not read."""

    status = 415
    code = "unsupported_media_type"


class RateLimited(HttpError):
    """More batches than the configured rate: shed, come back after ``retry_after`` s."""

    status = 429
    code = "rate_limited"
    retryable = True

    def __init__(
        self, message: str, *, retry_after: int, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, {**(details or {}), "retry_after": retry_after})
        self.retry_after = retry_after


class Unavailable(HttpError):
    """The database cannot serve the request now; try again later."""

    status = 503
    code = "unavailable"
    retryable = True
    retry_after = 1


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line (driver errors carry SQL and URLs)."""
    cause = getattr(exc, "orig", None) or exc
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0]
