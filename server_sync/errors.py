"""The server's errors; each knows its HTTP status and machine code.

    protocol.errors.ServerError
    └── HttpError                   500 internal            base: status, code, details
        ├── Unauthorized            401 unauthorized        no or unknown bearer token
        ├── Forbidden               403 forbidden
        │   ├── DeviceRevoked       403 device_revoked      the device was revoked
        │   └── WrongDevice         403 wrong_device        a batch sent as another device
        ├── NotFound                404 not_found
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


class Unauthorized(HttpError):
    """No bearer token, or one no device holds."""

    status = 401
    code = "unauthorized"


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


class NotFound(HttpError):
    """No such resource (a path, a device)."""

    status = 404
    code = "not_found"


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
