"""The device-side errors, one tree under protocol.errors.ClientError.

    ClientError                      (protocol.errors)
    ├── OutboxError                  the encrypted outbox cannot be opened, read or written
    │   ├── WrongKey                 "this key does not open <path>": no page of it decrypts
    │   ├── DamagedOutbox            the key is right (pages decrypt) but the file is damaged
    │   ├── NotAnOutbox              no such file, empty, plain SQLite, not whole pages, or an
    │   │                            encrypted database of another app
    │   ├── UnknownEntry             no entry with that op_id
    │   └── IllegalTransition        a state change the table in _states.py forbids
    ├── TransportError   retryable   a batch did not get through; every entry is kept
    │   ├── LinkFailure              network error, timeout, TLS failure, or an answer that
    │   │                            is not the server's (captive portal HTML, a redirect);
    │   │                            counts toward switching channel
    │   └── ServerBusy               429 or 5xx: the link works, the server asks us to wait
    │                                (``retry_after`` seconds); never switches channel
    └── SyncStopped                  the server said no in a way retrying cannot fix: stop,
        │                            keep every entry, surface the reason
        ├── AuthRejected             401/403: unauthorized, device_revoked, wrong_device
        ├── UpgradeRequired          426: the server does not speak our protocol/schema
        ├── BatchRefused             400/413 or another refusal: a client bug, surfaced
        └── AckMismatch              a well-formed ack that does not answer the batch sent

Every send error carries ``reason``, a ``protocol.reasons.Reason`` (the failure code the
sync report, the journal and the data box show): the channel sets it from the cause
(``_failures.classify``); without one, the class's ``default_reason`` stands.

None of the three opening errors (WrongKey, DamagedOutbox, NotAnOutbox) deletes,
truncates or writes the file or its -wal; see "Opening" in _outbox.py.

Retryability follows from the class (``retryable``); tenacity reads nothing else.
Third-party errors are translated at the boundary with ``raise ... from exc``.
"""

from __future__ import annotations

from typing import Any

from protocol.errors import ClientError
from protocol.reasons import Reason

__all__ = [
    "AckMismatch",
    "AuthRejected",
    "BatchRefused",
    "ClientError",
    "DamagedOutbox",
    "IllegalTransition",
    "LinkFailure",
    "NotAnOutbox",
    "OutboxError",
    "ServerBusy",
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


class _SendError(ClientError):
    """Shared context of errors raised while sending one batch, and its failure reason."""

    default_reason = Reason.NETWORK_UNREACHABLE

    def __init__(
        self,
        message: str,
        *,
        channel: str | None = None,
        batch_id: str | None = None,
        device_id: str | None = None,
        status: int | None = None,
        code: str | None = None,
        reason: Reason | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason if reason is not None else self.default_reason
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

    default_reason = Reason.SERVER_ERROR

    def __init__(self, message: str, *, retry_after: float | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.retry_after = retry_after


class SyncStopped(_SendError):
    """The server refused in a way retrying cannot fix; entries stay, the reason surfaces."""

    default_reason = Reason.SERVER_ERROR


class AuthRejected(SyncStopped):
    """401/403: the device is not (or no longer) allowed to sync; ``code`` says why."""

    default_reason = Reason.UNAUTHORISED


class UpgradeRequired(SyncStopped):
    """426: the server does not speak this protocol or schema version; upgrade the app."""

    default_reason = Reason.UPGRADE_REQUIRED


class BatchRefused(SyncStopped):
    """400/413 or another refusal of the whole batch: a client bug to surface, not retry."""


class AckMismatch(SyncStopped):
    """A well-formed ack whose batch id or results do not match the batch sent."""
