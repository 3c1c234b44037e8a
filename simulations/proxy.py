"""A fault-injecting TCP proxy in user space, modelled on Toxiproxy's toxics.

Theory of operation. One ``FaultProxy`` listens on 127.0.0.1 for one device
channel and forwards every connection to the server. Each connection runs two
pumps: *upstream* (device → server) and *downstream* (server → device). Every
chunk a pump reads passes through the toxics of its direction that are active at
that moment, in the order given, as in Toxiproxy:

    Latency(latency_ms, jitter_ms)      delay each chunk by latency ± jitter
    Bandwidth(rate_kbps)                at most rate KB/s
    Slicer(average_size, size_variation, delay_us)
                                        split chunks into small segments, pausing between
    LimitData(bytes)                    forward that many bytes on a connection, then cut it
    Timeout(timeout_ms)                 stop all data; close after timeout_ms (0: hold forever
                                        while the toxic is active: a blackhole or a stall)
    ResetPeer(timeout_ms)               reset the connection (RST) after timeout_ms
    SlowClose(delay_ms)                 delay closing the connection when its peer closes

Toxics are switched with ``set_link`` at any time (the runner does it on a
schedule); a change reaches open connections at their next chunk, so a stall that
is lifted lets the held data through, as a TCP retransmission would.
``Link(captive=True)`` answers every HTTP request itself with ``200 text/html``
(a captive portal's login page) and never reaches the server.

A small HTTP tap reads both directions (without altering them) and reports each
request and response (status, Retry-After) to an observer, so the harness checks
Retry-After independently of the client. Counters: connections, bytes per
direction, requests, responses by status.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

Stream = Literal["upstream", "downstream"]

HOST = "127.0.0.1"
CHUNK = 32 * 1024
#: How often a held connection looks again at whether its stall was lifted.
POLL = 0.02


@dataclass(frozen=True, slots=True)
class Latency:
    """Delay every chunk by ``latency_ms`` ± ``jitter_ms``."""

    latency_ms: float
    jitter_ms: float = 0.0
    stream: Stream = "downstream"


@dataclass(frozen=True, slots=True)
class Bandwidth:
    """Cap the stream at ``rate_kbps`` KB/s."""

    rate_kbps: float
    stream: Stream = "downstream"


@dataclass(frozen=True, slots=True)
class Slicer:
    """Split data into ``average_size`` ± ``size_variation`` byte segments, ``delay_us`` apart."""

    average_size: int
    size_variation: int = 0
    delay_us: int = 0
    stream: Stream = "downstream"


@dataclass(frozen=True, slots=True)
class LimitData:
    """Close the connection once ``bytes`` bytes went through in this direction."""

    bytes: int
    stream: Stream = "downstream"


@dataclass(frozen=True, slots=True)
class Timeout:
    """Stop all data; close after ``timeout_ms`` (0: hold until the toxic goes away)."""

    timeout_ms: float = 0.0
    stream: Stream = "upstream"


@dataclass(frozen=True, slots=True)
class ResetPeer:
    """Reset the connection (TCP RST) ``timeout_ms`` after data starts flowing."""

    timeout_ms: float = 0.0
    stream: Stream = "upstream"


@dataclass(frozen=True, slots=True)
class SlowClose:
    """Delay the close of the connection by ``delay_ms`` once its peer closed."""

    delay_ms: float
    stream: Stream = "downstream"


Toxic = Latency | Bandwidth | Slicer | LimitData | Timeout | ResetPeer | SlowClose


@dataclass(frozen=True, slots=True)
class Link:
    """The state of one link at one moment: a label, its toxics, captive portal or not."""

    label: str = "healthy"
    toxics: tuple[Toxic, ...] = ()
    captive: bool = False

    def of(self, stream: Stream) -> list[Toxic]:
        """The toxics acting on ``stream``, in order."""
        return [t for t in self.toxics if t.stream == stream]


@dataclass(frozen=True, slots=True)
class HttpEvent:
    """One HTTP message seen by the tap: a request going up or a response coming down."""

    t: float
    kind: Literal["request", "response"]
    status: int | None = None
    retry_after: float | None = None


@dataclass
class Counters:
    """What went through one proxy."""

    connections: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    requests: int = 0
    captive_answers: int = 0
    statuses: Counter[int] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready counters."""
        return {
            "connections": self.connections,
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
            "requests": self.requests,
            "captive_answers": self.captive_answers,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
        }


CAPTIVE_PAGE = (
    b"<!DOCTYPE html><html><head><title>Hotel WiFi - Sign in</title></head>"
    b"<body><h1>Welcome</h1><p>Please accept the terms to continue.</p>"
    b'<form method="post" action="/login"><button>Connect</button></form></body></html>'
)


class FaultProxy:
    """One fault-injecting proxy: 127.0.0.1:``port`` → ``target``; runs on a ProxyLoop."""

    def __init__(
        self,
        name: str,
        target: tuple[str, int],
        *,
        rng: random.Random | None = None,
        observer: Callable[[HttpEvent], None] | None = None,
    ) -> None:
        self.name = name
        self.target = target
        self.link = Link()
        self.counters = Counters()
        self.port = 0
        self._rng = rng or random.Random(0)
        self._observer = observer
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def set_link(self, link: Link) -> None:
        """Switch the toxics; open connections see the change at their next chunk."""
        self.link = link  # one reference swap: safe from any thread

    async def start(self) -> None:
        """Listen on 127.0.0.1 (a free port unless ``port`` was set)."""
        self._server = await asyncio.start_server(self._handle, HOST, self.port or 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening and cut every open connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- one connection -------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.counters.connections += 1
        try:
            if self.link.captive:
                await self._captive(reader, writer)
                return
            try:
                up_r, up_w = await asyncio.open_connection(*self.target)
            except OSError:
                _abort(writer)  # the server is down: the device sees a reset
                return
            await self._relay(reader, writer, up_r, up_w)
        except asyncio.CancelledError:
            _abort(writer)
        finally:
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _relay(
        self,
        client_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
        server_r: asyncio.StreamReader,
        server_w: asyncio.StreamWriter,
    ) -> None:
        tap_up = _HttpTap("request", self._emit)
        tap_down = _HttpTap("response", self._emit)
        pumps = [
            asyncio.create_task(self._pump("upstream", client_r, server_w, tap_up)),
            asyncio.create_task(self._pump("downstream", server_r, client_w, tap_down)),
        ]
        try:
            done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            reset = any(not t.cancelled() and t.result() == "reset" for t in done)
            if not reset:
                # one side closed: let the other side finish what it was sending
                await asyncio.wait(pumps, timeout=5.0)
            if reset or any(not t.done() for t in pumps):
                _abort(client_w)
                _abort(server_w)
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            for w in (client_w, server_w):
                with contextlib.suppress(Exception):
                    w.close()

    async def _pump(
        self,
        stream: Stream,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        tap: _HttpTap,
    ) -> str:
        """Forward ``src`` → ``dst`` through the toxics of ``stream``; "eof" or "reset"."""
        sent = 0
        started = time.monotonic()
        while True:
            outcome = await self._gate(stream, started)
            if outcome is not None:
                return outcome
            try:
                data = await src.read(CHUNK)
            except (ConnectionError, OSError):
                return "reset"
            if not data:
                for toxic in self.link.of(stream):
                    if isinstance(toxic, SlowClose):
                        await asyncio.sleep(toxic.delay_ms / 1000)
                with contextlib.suppress(Exception):
                    dst.write_eof()
                return "eof"
            tap.feed(data)
            outcome = await self._gate(stream, started)
            if outcome is not None:
                return outcome
            try:
                sent, cut = await self._forward(stream, data, dst, sent)
            except (ConnectionError, OSError):
                return "reset"
            if cut:
                return "reset"

    async def _gate(self, stream: Stream, started: float) -> str | None:
        """Hold while a Timeout is active; "reset" when a Timeout/ResetPeer ends the link."""
        held_since: float | None = None
        for _ in range(1_000_000):  # bounded: ~5 h of POLL; a held link is cut long before
            toxics = self.link.of(stream)
            reset = next((t for t in toxics if isinstance(t, ResetPeer)), None)
            if reset is not None and time.monotonic() - started >= reset.timeout_ms / 1000:
                return "reset"
            stall = next((t for t in toxics if isinstance(t, Timeout)), None)
            if stall is None and reset is None:
                return None
            if stall is None:
                await asyncio.sleep(POLL)  # a reset is due later; data waits
                continue
            now = time.monotonic()
            held_since = now if held_since is None else held_since
            if stall.timeout_ms and now - held_since >= stall.timeout_ms / 1000:
                return "reset"
            await asyncio.sleep(POLL)
        return "reset"

    async def _forward(
        self, stream: Stream, data: bytes, dst: asyncio.StreamWriter, sent: int
    ) -> tuple[int, bool]:
        """Send one chunk through latency, limit, slicer and bandwidth; (sent, cut)."""
        toxics = self.link.of(stream)
        cut = False
        for toxic in toxics:
            if isinstance(toxic, Latency):
                jitter = self._rng.uniform(-toxic.jitter_ms, toxic.jitter_ms)
                await asyncio.sleep(max(0.0, toxic.latency_ms + jitter) / 1000)
            elif isinstance(toxic, LimitData) and sent + len(data) >= toxic.bytes:
                data = data[: max(0, toxic.bytes - sent)]
                cut = True
        pieces = [data]
        slicer = next((t for t in toxics if isinstance(t, Slicer)), None)
        if slicer is not None:
            pieces = _slice(data, slicer, self._rng)
        rate = next((t.rate_kbps for t in toxics if isinstance(t, Bandwidth)), None)
        for index, piece in enumerate(pieces):
            if slicer is not None and index and slicer.delay_us:
                await asyncio.sleep(slicer.delay_us / 1e6)
            for part in _parts(piece, rate):
                # Counted before it leaves: whoever received it sees it counted.
                self._count(stream, len(part))
                dst.write(part)
                await dst.drain()
                if rate:
                    await asyncio.sleep(len(part) / (rate * 1000))
        return sent + len(data), cut

    def _count(self, stream: Stream, n: int) -> None:
        if stream == "upstream":
            self.counters.bytes_up += n
        else:
            self.counters.bytes_down += n

    def _emit(self, event: HttpEvent) -> None:
        if event.kind == "request":
            self.counters.requests += 1
        elif event.status is not None:
            self.counters.statuses[event.status] += 1
        if self._observer is not None:
            self._observer(event)

    async def _captive(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer every request on this connection with the login page, status 200."""
        tap = _HttpTap("request", self._emit)
        for _ in range(1000):  # bounded: requests on one keep-alive connection
            before = tap.complete
            while tap.complete == before:
                data = await reader.read(CHUNK)
                if not data:
                    return
                self.counters.bytes_up += len(data)
                tap.feed(data)
            if not self.link.captive:
                return  # the portal went away: this connection ends, the next one is real
            self.counters.captive_answers += 1
            head = (
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                f"Content-Length: {len(CAPTIVE_PAGE)}\r\nCache-Control: no-store\r\n\r\n"
            ).encode()
            self.counters.bytes_down += len(head) + len(CAPTIVE_PAGE)
            writer.write(head + CAPTIVE_PAGE)
            await writer.drain()


class ProxyLoop:
    """An asyncio loop in a daemon thread that runs FaultProxies; use as a context manager."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxies")
        self._thread.daemon = True
        self.proxies: list[FaultProxy] = []

    def __enter__(self) -> ProxyLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, proxy: FaultProxy) -> FaultProxy:
        """Start listening with ``proxy``; return it (its ``port`` is now set)."""
        self.call(proxy.start())
        self.proxies.append(proxy)
        return proxy

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 10.0) -> Any:
        """Run ``coro`` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def close(self) -> None:
        """Close every proxy and stop the loop thread."""
        if not self._thread.is_alive():
            return
        for proxy in self.proxies:
            with contextlib.suppress(Exception):
                self.call(proxy.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()


# -- helpers ------------------------------------------------------------------------


class _HttpTap:
    """Incremental HTTP/1.1 framing (Content-Length bodies) that reports each message."""

    def __init__(self, kind: Literal["request", "response"], emit: Callable[[HttpEvent], None]):
        self._kind = kind
        self._emit = emit
        self._buf = b""
        self._body_left = 0
        self._broken = False
        self.complete = 0

    def feed(self, data: bytes) -> None:
        if self._broken:
            return
        self._buf += data
        for _ in range(10_000):  # bounded: messages in one chunk
            if self._body_left:
                take = min(self._body_left, len(self._buf))
                self._body_left -= take
                self._buf = self._buf[take:]
                if self._body_left:
                    return
                self.complete += 1
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > 64 * 1024:
                    self._broken = True  # not HTTP as we know it: stop looking
                return
            head, self._buf = self._buf[:end].decode("latin-1"), self._buf[end + 4 :]
            self._message(head)
            if not self._body_left:
                self.complete += 1

    def _message(self, head: str) -> None:
        lines = head.split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        try:
            self._body_left = int(headers.get("content-length", "0"))
        except ValueError:
            self._broken = True
            return
        if self._kind == "request":
            self._emit(HttpEvent(time.time(), "request"))
            return
        parts = lines[0].split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        retry_after: float | None = None
        with contextlib.suppress(ValueError):
            retry_after = float(headers["retry-after"]) if "retry-after" in headers else None
        self._emit(HttpEvent(time.time(), "response", status, retry_after))


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0): the peer sees 'connection reset'."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport = writer.transport
    with contextlib.suppress(Exception):
        transport.abort()


def _slice(data: bytes, slicer: Slicer, rng: random.Random) -> list[bytes]:
    pieces = []
    at = 0
    for _ in range(len(data) + 1):  # bounded: at least one byte per piece
        if at >= len(data):
            break
        size = slicer.average_size + rng.randint(-slicer.size_variation, slicer.size_variation)
        size = max(1, size)
        pieces.append(data[at : at + size])
        at += size
    return pieces


def _parts(data: bytes, rate_kbps: float | None) -> list[bytes]:
    """Pieces of ~100 ms of transfer at ``rate_kbps`` (or the whole chunk)."""
    if not rate_kbps or not data:
        return [data] if data else []
    size = max(1, int(rate_kbps * 1000 * 0.1))
    return [data[i : i + size] for i in range(0, len(data), size)]
