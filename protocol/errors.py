"""The one exception tree of fieldsync; every package raises from here or a subclass.

    FieldsyncError
    ├── ProtocolError            malformed wire data (a batch, an ack, a header)
    │   └── UnsupportedVersion   protocol or schema version the peer does not speak
    ├── EntryInvalid             one entry's fields break its collection's schema
    ├── ClientError              client_sync/errors.py: outbox, transport, auth
    └── ServerError              server_sync/errors.py: auth, limits, apply

Whether an error is worth retrying follows from its class (``retryable``), never
from a flag passed around.
"""

from __future__ import annotations


class FieldsyncError(Exception):
    """Root of every error fieldsync raises on purpose."""

    retryable = False


class ProtocolError(FieldsyncError):
    """Wire data that does not decode to a valid message."""

    def __init__(self, message: str, errors: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or {}


class UnsupportedVersion(ProtocolError):
    """A protocol or schema version this side does not speak: upgrade required."""


class EntryInvalid(FieldsyncError):
    """An entry's fields break its collection's schema (machine code, field, message)."""

    def __init__(self, code: str, field: str | None, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.code = code
        self.field = field
        self.message = message


class ClientError(FieldsyncError):
    """Base of the device-side errors (see client_sync.errors)."""


class ServerError(FieldsyncError):
    """Base of the server-side errors (see server_sync.errors)."""
