"""Channels: move one batch's bytes, return its ack. Fallback is a ChannelSet, not a flag.

A channel knows nothing of the outbox or of retrying; it maps what happened on the
wire to the error tree (``client_sync.errors``) and returns an Ack only when the
server's answer is one. HttpChannel speaks the server's HTTP contract:

    200 + valid Ack  -> the Ack             200 + anything else -> LinkFailure
    400, 413         -> BatchRefused        401, 403            -> AuthRejected(code)
    426              -> UpgradeRequired     429, 5xx (not 511)  -> ServerBusy(Retry-After)
    connect/read/timeout/protocol errors, redirects, 511 and any other status whose
    body is not a fieldsync JSON error -> LinkFailure (something that is not our
    server answered: a captive portal, a proxy); another fieldsync error -> BatchRefused.
"""

from __future__ import annotations

import email.utils
import json
import math
from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

import httpx

from protocol.codec import decode_ack
from protocol.constants import MAX_WIRE_BYTES, MEDIA_TYPE
from protocol.errors import ProtocolError
from protocol.model import Ack

from ._batches import OutgoingBatch
from .errors import (
    AuthRejected,
    BatchRefused,
    LinkFailure,
    ServerBusy,
    UpgradeRequired,
)


@runtime_checkable
class Channel(Protocol):
    """Moves one batch to the server and returns its ack, or raises a ClientError."""

    name: str
    metered: bool

    def send(self, batch: OutgoingBatch) -> Ack:
        """Deliver ``batch`` (its ``body`` bytes, as they are); return the server's Ack."""
        ...


class HttpChannel:
    """POST batches to ``{base_url}/v1/batches`` over one network path."""

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
    ) -> None:
        if transport is not None and local_address is not None:
            raise ValueError("pass local_address or transport, not both")
        self.name = name
        self.metered = metered
        #: Bytes of the last answer's body as received (0: none came); the journal's.
        self.last_received = 0
        if transport is None:
            # Retries are the sync loop's business: the transport makes one attempt.
            transport = httpx.HTTPTransport(local_address=local_address, retries=0)
        self._client = httpx.Client(
            base_url=base_url,
            transport=transport,
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
        self.last_received = 0
        try:
            response = self._client.post("/v1/batches", content=body)
        except httpx.HTTPError as exc:
            raise LinkFailure(
                f"{self.name}: {type(exc).__name__}: {exc or 'no detail'}", **context
            ) from exc
        self.last_received = response.num_bytes_downloaded
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
            raise LinkFailure(
                f"{where} but the body ({kind}) is not an ack (captive portal?): {exc}",
                status=status,
                **context,
            ) from exc
    code, message = _error_body(response)
    detail = f"{where}{f' {code}' if code else ''}: {message or response.reason_phrase}"
    if status in (401, 403):
        raise AuthRejected(detail, status=status, code=code or "unauthorized", **context)
    if status == 426:
        raise UpgradeRequired(
            f"upgrade required: {detail}", status=status, code=code or "upgrade_required", **context
        )
    if status in (400, 413):
        raise BatchRefused(detail, status=status, code=code, **context)
    if status == 429 or (500 <= status <= 599 and status != 511):
        raise ServerBusy(
            detail, status=status, code=code, retry_after=_retry_after(response), **context
        )
    if code is not None:
        raise BatchRefused(detail, status=status, code=code, **context)
    raise LinkFailure(f"{detail} (not the fieldsync server)", status=status, **context)


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
