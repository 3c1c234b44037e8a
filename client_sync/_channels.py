"""Channels: move one batch's bytes, return its ack. Fallback is a ChannelSet, not a flag.

A channel knows nothing of the outbox or of retrying; it maps what happened on the
wire to the error tree (``client_sync.errors``), each error with its failure reason
(``_failures``), and returns an Ack only when the server's answer is one.
HttpChannel speaks the server's HTTP contract:

    200 + valid Ack      -> the Ack
    429, 5xx (not 511)   -> ServerBusy(Retry-After): rate_limited, server_error
    401, 403 + JSON      -> AuthRejected(code): unauthorised, device_revoked
    426 + JSON           -> UpgradeRequired: upgrade_required
    other status + JSON  -> BatchRefused (400, 413, 404 ...): server_error
    connect/read/TLS/timeout errors -> LinkFailure: network_unreachable, dns_failure,
                            timeout, tls_certificate_expired, tls_certificate_untrusted

An answer our server never gives is a captive portal (or a proxy or firewall between
the device and the server), LinkFailure ``captive_portal``: a 200 whose body is not an
ack (a login page), any redirect (3xx) except one from http to https on the same
host with default ports (the channel's URL lacks https: ``server_error``), and any
other status (511, 407, a 403 or 404 HTML page) whose body is not a fieldsync JSON
error. The server and its nginx front answer every error in that JSON shape and
never redirect.

TLS is always verified (``client_sync.tls``): against the system store, or only the
CAs of ``ca_bundle``; with ``pins``, the server's public key must be one of them.
"""

from __future__ import annotations

import email.utils
import json
import math
import ssl
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import httpx

from protocol.codec import decode_ack
from protocol.constants import MAX_WIRE_BYTES, MEDIA_TYPE
from protocol.errors import ProtocolError
from protocol.model import Ack
from protocol.reasons import Reason

from ._batches import OutgoingBatch
from ._failures import classify, of_answer
from .errors import (
    AuthRejected,
    BatchRefused,
    LinkFailure,
    ServerBusy,
    UpgradeRequired,
)
from .tls import client_context


@runtime_checkable
class Channel(Protocol):
    """Moves one batch to the server and returns its ack, or raises a ClientError."""

    name: str
    metered: bool

    def send(self, batch: OutgoingBatch) -> Ack:
        """Deliver ``batch`` (its ``body`` bytes, as they are); return the server's Ack."""
        ...


class HttpChannel:
    """POST batches to ``{base_url}/v1/batches`` over one network path.

    ``timeout`` bounds connecting and each read and write, in seconds. An https URL is
    verified against the system's CA store, or only the CAs of ``ca_bundle`` (a PEM
    file); ``pins`` (``sha256/<base64>``) also require one of these public keys.
    ``transport`` (tests: ``httpx.WSGITransport``) excludes ``local_address``,
    ``ca_bundle`` and ``pins``, which configure the transport this channel makes.
    """

    def __init__(
        self,
        name: str,
        base_url: str,
        token: str,
        *,
        local_address: str | None = None,
        metered: bool = False,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        ca_bundle: str | Path | None = None,
        pins: Iterable[str] = (),
    ) -> None:
        pins = tuple(pins)
        if transport is not None and (local_address is not None or ca_bundle or pins):
            raise ValueError("pass local_address, ca_bundle or pins, or a transport: not both")
        self.name = name
        self.metered = metered
        verify: ssl.SSLContext | bool = True  # a given transport brings its own
        if transport is None:
            verify = client_context(ca_bundle, pins)
            # Retries are the sync loop's business: the transport makes one attempt.
            transport = httpx.HTTPTransport(local_address=local_address, retries=0, verify=verify)
        self._client = httpx.Client(
            base_url=base_url,
            transport=transport,
            verify=verify,  # also for a proxy taken from the environment
            timeout=timeout,
            follow_redirects=False,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": MEDIA_TYPE,
                "Content-Encoding": "gzip",
                "Accept": MEDIA_TYPE,
            },
        )

    def send(self, batch: OutgoingBatch) -> Ack:
        """POST the batch's gzipped bytes; map the answer (see the module docstring)."""
        context: dict[str, Any] = {
            "channel": self.name,
            "batch_id": batch.batch_id,
            "device_id": batch.device_id,
        }
        body = batch.gzipped
        if len(body) > MAX_WIRE_BYTES:
            raise BatchRefused(
                f"batch {batch.batch_id} is {len(body)} bytes compressed; "
                f"the server takes {MAX_WIRE_BYTES}",
                code="too_large",
                **context,
            )
        try:
            response = self._client.post("/v1/batches", content=body)
        except httpx.HTTPError as exc:
            reason = classify(exc)
            raise LinkFailure(
                f"{self.name}: {reason}: {type(exc).__name__}: {exc or 'no detail'}",
                reason=reason,
                **context,
            ) from exc
        return _answer(response, context)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> HttpChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HttpChannel({self.name!r}, {str(self._client.base_url)!r}, metered={self.metered})"


class ChannelSet:
    """An ordered list of channels, most preferred first, with a cursor on the one in use."""

    def __init__(self, channels: Iterable[Channel]) -> None:
        self.channels: tuple[Channel, ...] = tuple(channels)
        if not self.channels:
            raise ValueError("a ChannelSet needs at least one channel")
        names = [c.name for c in self.channels]
        if len(set(names)) != len(names):
            raise ValueError(f"channel names must differ: {names}")
        self._index = 0

    @property
    def current(self) -> Channel:
        """The channel the next attempt goes out on."""
        return self.channels[self._index]

    def advance(self) -> bool:
        """Switch to the next channel (wrapping round); False if there is no other."""
        if len(self.channels) == 1:
            return False
        self._index = (self._index + 1) % len(self.channels)
        return True

    def reset(self) -> None:
        """Go back to the preferred (first) channel."""
        self._index = 0

    def close(self) -> None:
        """Close every channel that has a ``close``."""
        for channel in self.channels:
            close = getattr(channel, "close", None)
            if callable(close):
                close()


def _answer(response: httpx.Response, context: dict[str, Any]) -> Ack:
    status = response.status_code
    where = f"{context['channel']}: HTTP {status}"
    if status == 200:
        try:
            return decode_ack(response.content)
        except ProtocolError as exc:
            kind = response.headers.get("content-type", "no content-type")
            raise _portal(f"{where} but the body ({kind}) is not an ack", status, context) from exc
    if 300 <= status <= 399:
        raise _redirect(response, where, context)
    code, message = _error_body(response)
    detail = f"{where}{f' {code}' if code else ''}: {message or response.reason_phrase}"
    reason = of_answer(status, code)
    if status == 429 or (500 <= status <= 599 and status != 511):
        raise ServerBusy(
            detail, status=status, code=code, reason=reason,
            retry_after=_retry_after(response), **context,
        )  # fmt: skip
    if code is None:
        raise _portal(f"{detail}, not a fieldsync error", status, context)
    if status in (401, 403):
        raise AuthRejected(detail, status=status, code=code, reason=reason, **context)
    if status == 426:
        raise UpgradeRequired(
            f"upgrade required: {detail}", status=status, code=code, reason=reason, **context
        )
    raise BatchRefused(detail, status=status, code=code, reason=Reason.SERVER_ERROR, **context)


def _portal(detail: str, status: int, context: dict[str, Any]) -> LinkFailure:
    """An answer our server never gives: something between us and it answered."""
    return LinkFailure(
        f"{detail} (captive portal?)", status=status, reason=Reason.CAPTIVE_PORTAL, **context
    )


def _redirect(response: httpx.Response, where: str, context: dict[str, Any]) -> LinkFailure:
    """A 3xx: a portal's, unless it is http -> https on the same host and port."""
    status = response.status_code
    # httpx has parsed Location already (an unparsable one is a RemoteProtocolError).
    sent = response.request.url
    target = sent.join(response.headers.get("location", ""))
    https_of_ours = (
        (sent.scheme, target.scheme) == ("http", "https")
        and target.host == sent.host
        and target.port in (None, 443)
        and sent.port in (None, 80)
    )
    if not https_of_ours:
        return _portal(f"{where} to {str(target)[:200]}", status, context)
    return LinkFailure(
        f"{where}: the server redirects to {target}; use its https URL for this channel",
        status=status,
        reason=Reason.SERVER_ERROR,
        **context,
    )


def _error_body(response: httpx.Response) -> tuple[str | None, str | None]:
    """(code, message) of a fieldsync JSON error body, or (None, None)."""
    try:
        raw = json.loads(response.content)
    except ValueError:
        return None, None
    error = raw.get("error") if isinstance(raw, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("code"), str):
        return None, None
    message = error.get("message")
    return error["code"], message if isinstance(message, str) else None


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date), None if unusable."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    seconds: float | None
    try:
        seconds = float(value)
    except ValueError:
        seconds = _http_date_delta(value, response.headers.get("date"))
    if seconds is None or not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def _http_date_delta(value: str, date: str | None) -> float | None:
    """An HTTP-date Retry-After, relative to the response's own Date header."""
    if date is None:
        return None
    try:
        until = email.utils.parsedate_to_datetime(value)
        now = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError):
        return None
    if until.tzinfo is None or now.tzinfo is None:
        return None
    return (until - now).total_seconds()
