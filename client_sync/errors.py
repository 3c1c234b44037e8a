"""The device-side errors, one tree under protocol.errors.ClientError.

    ClientError                      (protocol.errors)
    ├── OutboxError                  the encrypted outbox cannot be opened, read or written
    │   ├── WrongKey                 "this key does not open <path>": no page of it decrypts
    │   ├── DamagedOutbox            the key is right (pages decrypt) but the file is damaged
    │   ├── NotAnOutbox              no such file, empty, plain SQLite, not whole pages, or an
    │   │                            encrypted database of another app
    │   ├── UnknownEntry             no entry with that op_id
    │   ├── StorageLow               free space under the floor: the record was refused,
    │   │                            nothing stored (reason ``storage_low``)
    │   └── IllegalTransition        a state change the table in _states.py forbids
    ├── TransportError   retryable   a batch did not get through; every entry is kept
    │   ├── LinkFailure              network error, timeout, or an answer that is not the
    │   │                            server's (captive portal HTML, a redirect); counts
    │   │                            toward switching channel
    │   └── ServerBusy               429 or 5xx: the link works, the server asks us to wait
    │                                (``retry_after`` seconds); never switches channel
    ├── MessagesMissing              a compiled message catalogue is not installed (a
    │                                build that skipped setup.py's compile step)
    └── SyncStopped                  the server said no in a way retrying cannot fix: stop,
        │                            keep every entry, surface the reason
        ├── AuthRejected             401/403: unauthorized, device_revoked, wrong_device
        ├── UpgradeRequired          426: the server does not speak our protocol/schema
        ├── BatchRefused             400/413 or another refusal: a client bug, surfaced
        └── AckMismatch              a well-formed ack that does not answer the batch sent

None of the three opening errors (WrongKey, DamagedOutbox, NotAnOutbox) deletes,
truncates or writes the file or its -wal; see "Opening" in _outbox.py.

Retryability follows from the class (``retryable``); tenacity reads nothing else.
Third-party errors are translated at the boundary with ``raise ... from exc``.
"""

from __future__ import annotations

from typing import Any

from protocol.errors import ClientError

__all__ = [
    "AckMismatch",
    "AuthRejected",
    "BatchRefused",
    "ClientError",
    "DamagedOutbox",
    "IllegalTransition",
    "LinkFailure",
    "MessagesMissing",
    "NotAnOutbox",
    "OutboxError",
    "ServerBusy",
    "StorageLow",
    "SyncStopped",
    "TransportError",
    "UnknownEntry",
    "UpgradeRequired",
    "WrongKey",
]


class OutboxError(ClientError):
    """The encrypted outbox at ``path`` cannot be opened, read or written."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class WrongKey(OutboxError):
    """No page of the file decrypts with this key: a wrong key (or a destroyed salt)."""

    def __init__(self, path: str) -> None:
        super().__init__(
            f"this key does not open {path}: no page of it decrypts with this key", path=path
        )


class DamagedOutbox(OutboxError):
    """Pages decrypt with this key, so it is the right one, but the file is damaged."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(f"the outbox {path} is damaged: {detail}", path=path)
        self.detail = detail


class NotAnOutbox(OutboxError):
    """The file is not a fieldsync outbox (and so is left exactly as it is)."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(f"{path} is not an outbox: {detail}", path=path)
        self.detail = detail


class UnknownEntry(OutboxError):
    """No entry in the outbox has this op_id."""

    def __init__(self, op_id: str, *, path: str | None = None) -> None:
        super().__init__(f"no entry {op_id} in the outbox", path=path)
        self.op_id = op_id


class IllegalTransition(OutboxError):
    """An outbox state change that the transition table forbids."""

    def __init__(self, src: str, dst: str, *, op_id: str | None = None) -> None:
        what = f"entry {op_id}" if op_id else "an entry"
        super().__init__(f"{what} cannot go from {src} to {dst}")
        self.src = src
        self.dst = dst
        self.op_id = op_id


class StorageLow(OutboxError):
    """Free space on the outbox's filesystem is under the floor: the record was refused.

    Nothing was stored, and nothing stored was touched; ``reason`` is ``storage_low``.
    """

    reason = "storage_low"

    def __init__(self, path: str, free_bytes: int, floor: int) -> None:
        super().__init__(
            f"storage low: {free_bytes} bytes free where {path} lives, under the floor of "
            f"{floor}; the record was not stored",
            path=path,
        )
        self.free_bytes = free_bytes
        self.floor = floor


class MessagesMissing(ClientError):
    """A compiled message catalogue (.mo) is missing: the package was built without them."""

    def __init__(self, path: str) -> None:
        super().__init__(
            f"message catalogue {path} is missing: build or install the package "
            "(pip install -e . compiles the .po files)"
        )
        self.path = path


class _SendError(ClientError):
    """Shared context of errors raised while sending one batch."""

    def __init__(
        self,
        message: str,
        *,
        channel: str | None = None,
        batch_id: str | None = None,
        device_id: str | None = None,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.channel = channel
        self.batch_id = batch_id
        self.device_id = device_id
        self.status = status
        self.code = code


class TransportError(_SendError):
    """A batch did not get through; retrying may help. Nothing left the outbox."""

    retryable = True


class LinkFailure(TransportError):
    """The link is not working: network error, timeout, or garbage instead of an ack."""


class ServerBusy(TransportError):
    """The server answered 429 or 5xx; wait at least ``retry_after`` seconds if given."""

    def __init__(self, message: str, *, retry_after: float | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.retry_after = retry_after


class SyncStopped(_SendError):
    """The server refused in a way retrying cannot fix; entries stay, the reason surfaces."""


class AuthRejected(SyncStopped):
    """401/403: the device is not (or no longer) allowed to sync; ``code`` says why."""


class UpgradeRequired(SyncStopped):
    """426: the server does not speak this protocol or schema version; upgrade the app."""


class BatchRefused(SyncStopped):
    """400/413 or another refusal of the whole batch: a client bug to surface, not retry."""


class AckMismatch(SyncStopped):
    """A well-formed ack whose batch id or results do not match the batch sent."""
