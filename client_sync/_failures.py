"""Failure reasons: what httpx, ssl and socket raise, and what the server answers, as codes.

``classify(exc)`` gives the ``Reason`` of a failed attempt. A client send error carries
its reason already (``exc.reason``, set by the channel); anything else is classified
by its chain of causes: ``__cause__``, ``__context__`` and exceptions held in ``args``
(httpcore keeps the socket's error there and re-raises ``from None``). The first row
of ``CAUSES`` that any link of the chain matches wins, so rows go from the most
specific cause to the most general. ``of_answer`` gives the reason of an HTTP answer
that is the server's (a fieldsync JSON error, or a 429/5xx).

Certificate validity: OpenSSL's "has expired" (10) and "not yet valid" (9) are both
``tls_certificate_expired``: the certificate is outside its validity period, on the
device's clock (a wrong date on the phone shows up here too, and is the rep's fix).
Every other verification failure (unknown CA, self-signed, wrong host name, a pinned
key that does not match) is ``tls_certificate_untrusted``.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterator

import httpx

from protocol.reasons import Reason

from .tls import PinMismatch

#: X509_V_ERR_CERT_NOT_YET_VALID, X509_V_ERR_CERT_HAS_EXPIRED (OpenSSL's x509_vfy.h).
EXPIRED_VERIFY_CODES = frozenset({9, 10})

#: Links of a cause chain looked at, at most (a chain is a handful; a cycle is cut).
_MAX_CHAIN = 16

Match = Callable[[BaseException], bool]


def _is(*kinds: type[BaseException]) -> Match:
    return lambda exc: isinstance(exc, kinds)


def _expired(exc: BaseException) -> bool:
    return isinstance(exc, ssl.SSLCertVerificationError) and (
        getattr(exc, "verify_code", None) in EXPIRED_VERIFY_CODES
    )


#: (does this link match, its reason), most specific first.
CAUSES: tuple[tuple[Match, Reason], ...] = (
    (_is(PinMismatch), Reason.TLS_CERTIFICATE_UNTRUSTED),
    (_expired, Reason.TLS_CERTIFICATE_EXPIRED),
    (_is(ssl.SSLCertVerificationError), Reason.TLS_CERTIFICATE_UNTRUSTED),
    (_is(socket.gaierror), Reason.DNS_FAILURE),
    (_is(httpx.TimeoutException, TimeoutError), Reason.TIMEOUT),
    (_is(OSError, httpx.TransportError), Reason.NETWORK_UNREACHABLE),
)

#: A fieldsync error code that says more than its HTTP status.
ANSWER_CODES: dict[str, Reason] = {
    "device_revoked": Reason.DEVICE_REVOKED,
    "unauthorized": Reason.UNAUTHORISED,
    "wrong_device": Reason.UNAUTHORISED,
    "rate_limited": Reason.RATE_LIMITED,
    "upgrade_required": Reason.UPGRADE_REQUIRED,
}

#: The reason of a server answer by its status, when its code is not in ANSWER_CODES.
ANSWER_STATUSES: dict[int, Reason] = {
    401: Reason.UNAUTHORISED,
    403: Reason.UNAUTHORISED,
    426: Reason.UPGRADE_REQUIRED,
    429: Reason.RATE_LIMITED,
}


def classify(exc: BaseException) -> Reason:
    """The failure reason of ``exc``: the one it carries, else the first CAUSES match."""
    carried = getattr(exc, "reason", None)
    if isinstance(carried, Reason):
        return carried
    links = list(_chain(exc))
    for matches, reason in CAUSES:
        if any(matches(link) for link in links):
            return reason
    return Reason.NETWORK_UNREACHABLE  # the attempt did not get through, cause unknown


def of_answer(status: int, code: str | None) -> Reason:
    """The reason of an answer that is the server's: by its error code, else its status."""
    by_code = ANSWER_CODES.get(code) if code is not None else None
    return by_code or ANSWER_STATUSES.get(status, Reason.SERVER_ERROR)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions under it, each once, breadth first, bounded."""
    seen: set[int] = set()
    queue = [exc]
    while queue and len(seen) < _MAX_CHAIN:
        link = queue.pop(0)
        if id(link) in seen:
            continue
        seen.add(id(link))
        yield link
        held = [a for a in link.args if isinstance(a, BaseException)]
        queue += [e for e in (link.__cause__, link.__context__, *held) if e is not None]
