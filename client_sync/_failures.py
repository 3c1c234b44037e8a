"""What made an attempt fail, as a Reason: one small pure function over one table.

``classify`` takes what the client sees when a send fails (an exception from a
channel, an ``httpx.Response``, a server ``Result``, a StorageLow) and returns the
reason the data box, the journal and the fleet view show. It looks, in order, at the
causes chained under the exception (``raise ... from``: the socket or TLS error
under httpx's), then at the exception's class and HTTP status, then at the server's
error code. The first row of ``_CAUSES`` or ``_CLASSES`` that matches wins.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterator

import httpx

from protocol.model import Result
from protocol.reasons import Reason, reason_of

from .errors import (
    AckMismatch,
    AuthRejected,
    BatchRefused,
    LinkFailure,
    ServerBusy,
    StorageLow,
    UpgradeRequired,
)

Failure = BaseException | httpx.Response | Result

#: What UpgradeRequired says when it is a collection's schema version, not the
#: protocol, that the server does not speak (protocol.registry.check_version).
_SCHEMA_WORDS = "schema version"


def _cert_expired(exc: BaseException) -> bool:
    return isinstance(exc, ssl.SSLCertVerificationError) and "expired" in str(
        exc.verify_message or exc
    )


#: Causes found anywhere in the chain under the exception, most specific first.
_CAUSES: tuple[tuple[Callable[[BaseException], bool], Reason], ...] = (
    (_cert_expired, Reason.TLS_CERTIFICATE_EXPIRED),
    (lambda e: isinstance(e, ssl.SSLCertVerificationError), Reason.TLS_CERTIFICATE_UNTRUSTED),
    (lambda e: isinstance(e, socket.gaierror), Reason.DNS_FAILURE),
    (lambda e: isinstance(e, httpx.TimeoutException | TimeoutError), Reason.TIMEOUT),
)


def _is(
    kind: type[BaseException] | tuple[type[BaseException], ...],
    *,
    status: int | None = None,
    code: str | None = None,
    has_status: bool = False,
    says: str | None = None,
) -> Callable[[BaseException], bool]:
    """A row's test: an instance of ``kind`` with that HTTP status / error code / words."""

    def matches(exc: BaseException) -> bool:
        got = getattr(exc, "status", None)
        return (
            isinstance(exc, kind)
            and (status is None or got == status)
            and (code is None or getattr(exc, "code", None) == code)
            and (not has_status or got is not None)
            and (says is None or says in str(exc))
        )

    return matches


#: The failure itself, by class (and status or code where the class alone does not say).
_CLASSES: tuple[tuple[Callable[[BaseException], bool], Reason], ...] = (
    (_is(StorageLow), Reason.STORAGE_LOW),
    (_is(ServerBusy, status=429), Reason.RATE_LIMITED),
    (_is(ServerBusy), Reason.SERVER_ERROR),
    (_is(AuthRejected, code="device_revoked"), Reason.DEVICE_REVOKED),
    (_is(AuthRejected), Reason.UNAUTHORISED),
    (_is(UpgradeRequired, says=_SCHEMA_WORDS), Reason.SCHEMA_MISMATCH),
    (_is(UpgradeRequired), Reason.UPGRADE_REQUIRED),
    (_is(AckMismatch), Reason.SERVER_ERROR),
    # An HTTP answer that is not our server's: a sign-in page, a redirect, 511.
    (_is(LinkFailure, has_status=True), Reason.CAPTIVE_PORTAL),
    (_is((LinkFailure, httpx.TransportError, OSError)), Reason.NETWORK_UNREACHABLE),
)


def classify(failure: Failure) -> Reason:
    """The reason behind one failed attempt (or one rejected entry)."""
    if isinstance(failure, Result):
        return reason_of(failure.outcome.code)
    if isinstance(failure, httpx.Response):
        return _of_status(failure.status_code)
    for cause in _chain(failure):
        for matches, reason in _CAUSES:
            if matches(cause):
                return reason
    for matches, reason in _CLASSES:
        if matches(failure):
            return reason
    if isinstance(failure, BatchRefused):
        return reason_of(failure.code)
    return Reason.NETWORK_UNREACHABLE


def _of_status(status: int) -> Reason:
    """The reason of an HTTP answer that is not an ack."""
    if status in (401, 403):
        return Reason.UNAUTHORISED
    if status == 426:
        return Reason.UPGRADE_REQUIRED
    if status == 429:
        return Reason.RATE_LIMITED
    if 500 <= status <= 599 and status != 511:
        return Reason.SERVER_ERROR
    if status in (400, 413):
        return Reason.INVALID_VALUE
    return Reason.CAPTIVE_PORTAL  # 200 without an ack, a redirect, 511: not our server


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every cause or context under it (each once; cycles end the walk)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__
