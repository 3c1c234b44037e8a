"""Each fault of the proxy, with real sockets on 127.0.0.1 (generous timing bounds only)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from client_sync import HttpChannel, OutgoingBatch
from client_sync.errors import LinkFailure
from protocol.codec import assemble_batch, compress
from protocol.constants import PROTOCOL_VERSION
from simulations.proxy import (
    Bandwidth,
    FaultProxy,
    HttpEvent,
    Latency,
    LimitData,
    Link,
    ProxyLoop,
    ResetPeer,
    Slicer,
    SlowClose,
    Timeout,
)


class Echo:
    """A TCP server on 127.0.0.1 that echoes, or sends ``payload`` on connect."""

    def __init__(self, payload: bytes = b"") -> None:
        self.payload = payload
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received = bytearray()
        self.segments: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                if self.payload:
                    conn.sendall(self.payload)
                    conn.shutdown(socket.SHUT_WR)
                while data := conn.recv(65536):
                    self.segments.append(len(data))
                    self.received += data
                    if not self.payload:
                        conn.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def loop() -> Iterator[ProxyLoop]:
    with ProxyLoop() as proxies:
        yield proxies


def proxy_to(loop: ProxyLoop, server: Echo, link: Link, **kw: object) -> FaultProxy:
    proxy = loop.add(FaultProxy("test", ("127.0.0.1", server.port), **kw))  # type: ignore[arg-type]
    proxy.set_link(link)
    return proxy


def connect(proxy: FaultProxy, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout)


def read_all(sock: socket.socket) -> bytes:
    """Everything until the peer closes; what arrived before a reset counts too."""
    out = bytearray()
    for _ in range(100_000):
        try:
            data = sock.recv(65536)
        except ConnectionError:
            break
        if not data:
            break
        out += data
    return bytes(out)


@pytest.fixture
def echo() -> Iterator[Echo]:
    server = Echo()
    yield server
    server.close()


def test_a_healthy_link_forwards_both_ways_and_counts_bytes(loop: ProxyLoop, echo: Echo) -> None:
    proxy = proxy_to(loop, echo, Link())
    with connect(proxy) as sock:
        sock.sendall(b"hello")
        assert sock.recv(100) == b"hello"
    assert proxy.counters.bytes_up == 5
    assert proxy.counters.bytes_down == 5


def test_latency_delays_each_direction(loop: ProxyLoop, echo: Echo) -> None:
    proxy = proxy_to(loop, echo, Link(toxics=(Latency(200, 0, "downstream"),)))
    with connect(proxy) as sock:
        start = time.monotonic()
        sock.sendall(b"ping")
        assert sock.recv(100) == b"ping"
        assert time.monotonic() - start >= 0.18


def test_reset_peer_resets_the_connection(loop: ProxyLoop, echo: Echo) -> None:
    proxy = proxy_to(loop, echo, Link(toxics=(ResetPeer(0, "upstream"),)))
    resets = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)
    # the reset may even beat the end of the handshake, so connect() is inside too
    with pytest.raises(resets), connect(proxy) as sock:
        sock.sendall(b"x")
        for _ in range(10):
            if not sock.recv(100):
                raise AssertionError("closed cleanly instead of a reset")
    assert echo.received == b""


def test_timeout_zero_holds_data_until_lifted(loop: ProxyLoop, echo: Echo) -> None:
    proxy = proxy_to(loop, echo, Link(toxics=(Timeout(0, "upstream"),)))
    with connect(proxy) as sock:
        sock.sendall(b"held")
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(100)  # a blackhole: no data, no close
        assert echo.received == b""
        proxy.set_link(Link())  # the stall ends: held data goes through, as a retransmission
        sock.settimeout(5)
        assert sock.recv(100) == b"held"


def test_timeout_with_a_delay_closes_after_it(loop: ProxyLoop, echo: Echo) -> None:
    proxy = proxy_to(loop, echo, Link(toxics=(Timeout(300, "upstream"),)))
    with connect(proxy) as sock:
        start = time.monotonic()
        sock.sendall(b"x")
        with pytest.raises(ConnectionError):
            if not sock.recv(100):
                raise ConnectionResetError
        assert time.monotonic() - start >= 0.25
    assert echo.received == b""


def test_limit_data_cuts_after_n_bytes() -> None:
    server = Echo(payload=b"a" * 10_000)
    try:
        with ProxyLoop() as loop:
            proxy = proxy_to(loop, server, Link(toxics=(LimitData(1000, "downstream"),)))
            with connect(proxy) as sock:
                got = read_all(sock)
            assert got == b"a" * 1000
    finally:
        server.close()


def test_slicer_splits_data_into_small_segments(loop: ProxyLoop, echo: Echo) -> None:
    proxy = proxy_to(loop, echo, Link(toxics=(Slicer(100, 0, 50_000, "upstream"),)))
    with connect(proxy) as sock:
        sock.sendall(b"b" * 1000)
        got = bytearray()
        while len(got) < 1000:
            got += sock.recv(65536)
    assert bytes(echo.received) == b"b" * 1000
    assert len(echo.segments) >= 4  # 10 slices 50 ms apart: not one read of 1000 bytes
    assert min(echo.segments) <= 100


def test_bandwidth_caps_the_rate(loop: ProxyLoop, echo: Echo) -> None:
    proxy = proxy_to(loop, echo, Link(toxics=(Bandwidth(50, "upstream"),)))  # 50 KB/s
    with connect(proxy) as sock:
        start = time.monotonic()
        sock.sendall(b"c" * 50_000)
        got = bytearray()
        while len(got) < 50_000:
            got += sock.recv(65536)
        assert time.monotonic() - start >= 0.8  # 50 KB at 50 KB/s: about a second


def test_slow_close_delays_the_close(loop: ProxyLoop) -> None:
    server = Echo(payload=b"bye")
    try:
        proxy = proxy_to(loop, server, Link(toxics=(SlowClose(400, "downstream"),)))
        with connect(proxy) as sock:
            start = time.monotonic()
            assert read_all(sock) == b"bye"
            assert time.monotonic() - start >= 0.35
    finally:
        server.close()


def test_a_captive_portal_answers_html_200_and_the_client_does_not_take_it(
    loop: ProxyLoop, echo: Echo
) -> None:
    proxy = proxy_to(loop, echo, Link(captive=True))
    response = httpx.post(f"http://127.0.0.1:{proxy.port}/v1/batches", content=b"{}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert echo.received == b""  # never reached the server
    body = assemble_batch(PROTOCOL_VERSION, "b1", "dev", ())
    batch = OutgoingBatch("b1", "dev", PROTOCOL_VERSION, (), (), body, compress(body))
    with (
        HttpChannel("wifi", f"http://127.0.0.1:{proxy.port}", "t") as channel,
        pytest.raises(LinkFailure, match="captive portal"),
    ):
        channel.send(batch)
    assert proxy.counters.captive_answers == 2


def test_the_tap_reports_requests_and_429_retry_after() -> None:
    answer = (
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 2\r\n\r\n{}"
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    )
    server = Echo(payload=answer)
    seen: list[HttpEvent] = []
    try:
        with ProxyLoop() as loop:
            proxy = proxy_to(loop, server, Link(), observer=seen.append)
            with connect(proxy) as sock:
                sock.sendall(b"POST /v1/batches HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
                assert read_all(sock) == answer
    finally:
        server.close()
    assert [(e.kind, e.status, e.retry_after) for e in seen] == [
        ("request", None, None),
        ("response", 429, 7.0),
        ("response", 200, None),
    ]
