"""HttpChannel's mapping of the server's HTTP contract onto the error tree; ChannelSet."""

from __future__ import annotations

import socket
import threading
import wsgiref.simple_server
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from client_sync import Channel, ChannelSet, HttpChannel, OutgoingBatch, RetryPolicy, SyncClient
from client_sync.errors import (
    AuthRejected,
    BatchRefused,
    LinkFailure,
    ServerBusy,
    SyncStopped,
    TransportError,
    UpgradeRequired,
)
from protocol.model import Entry
from tests._doubles import Enrolled, Offline, RealServer, outgoing
from tests.client_sync.conftest import Link

MakeClient = Callable[..., SyncClient]
Handler = Callable[[httpx.Request], httpx.Response]


def a_batch(n: int = 2, device_id: str = "dev-1") -> OutgoingBatch:
    entries = tuple(
        Entry(f"op-{i}", device_id, i, "tx-1", n, f"1700000000000-0000{i}-{device_id}",
              "customers", f"c{i}", "upsert", {"name": f"C{i}"}, 1)
        for i in range(1, n + 1)
    )  # fmt: skip
    return outgoing(entries)


class Recording(httpx.BaseTransport):
    """Passes requests to the real server's app, keeping each one."""

    def __init__(self, server: RealServer) -> None:
        self.inner = server.transport()
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.inner.handle_request(request)


def error(status: int, code: str, message: str = "no", **headers: str) -> Handler:
    body = {"error": {"code": code, "message": message, "details": {}}}
    return lambda request: httpx.Response(status, json=body, headers=headers)


def channel(handler: Handler, name: str = "wifi", **kw: object) -> HttpChannel:
    return HttpChannel(
        name, "http://sync.test", "tok-123", transport=httpx.MockTransport(handler), **kw
    )  # type: ignore[arg-type]


# -- what goes on the wire ------------------------------------------------------------


def test_a_batch_is_posted_gzipped_with_the_bearer_token(
    server: RealServer, device: Enrolled
) -> None:
    recording = Recording(server)
    with server.channel(device, transport=recording) as wifi:
        ack = wifi.send(a_batch(device_id=device.device_id))
    (request,) = recording.requests
    assert request.method == "POST" and str(request.url) == "http://fieldsync.test/v1/batches"
    assert request.headers["authorization"] == f"Bearer {device.token}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["content-encoding"] == "gzip"
    assert request.content[:2] == b"\x1f\x8b"
    assert [r.status for r in ack.results] == ["applied", "applied"]
    assert isinstance(wifi, Channel)


# -- answers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("handler", "kind", "code"),
    [
        (error(401, "unauthorized"), AuthRejected, "unauthorized"),
        (error(403, "device_revoked"), AuthRejected, "device_revoked"),
        (error(403, "wrong_device"), AuthRejected, "wrong_device"),
        (error(426, "upgrade_required"), UpgradeRequired, "upgrade_required"),
        (error(400, "malformed_batch"), BatchRefused, "malformed_batch"),
        (error(413, "too_large"), BatchRefused, "too_large"),
        (error(404, "not_found"), BatchRefused, "not_found"),
    ],
)
def test_refusals_stop_syncing_with_the_servers_code(
    handler: Handler, kind: type[SyncStopped], code: str
) -> None:
    with channel(handler) as wifi, pytest.raises(kind) as caught:
        wifi.send(a_batch())
    assert not caught.value.retryable
    assert (caught.value.code, caught.value.channel, caught.value.batch_id) == (
        code,
        "wifi",
        "batch-1",
    )
    assert caught.value.device_id == "dev-1"


def test_upgrade_required_says_so() -> None:
    wifi = channel(error(426, "upgrade_required", "protocol 1.0 is retired"))
    with wifi, pytest.raises(UpgradeRequired, match="upgrade required"):
        wifi.send(a_batch())


@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [
        ({"Retry-After": "120"}, 120.0),
        ({"Retry-After": "1.5"}, 1.5),
        (
            {
                "Retry-After": "Wed, 21 Oct 2026 07:28:30 GMT",
                "Date": "Wed, 21 Oct 2026 07:28:00 GMT",
            },
            30.0,
        ),
        ({"Retry-After": "Wed, 21 Oct 2026 07:28:30 GMT"}, None),  # no Date to measure from
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "-5"}, 0.0),
        ({}, None),
    ],
)
def test_busy_answers_are_retryable_and_carry_retry_after(
    headers: dict[str, str], retry_after: float | None
) -> None:
    for status in (429, 500, 502, 503):
        with channel(error(status, "busy", **headers)) as wifi, pytest.raises(ServerBusy) as caught:
            wifi.send(a_batch())
        assert caught.value.retryable and caught.value.status == status
        assert caught.value.retry_after == retry_after


def test_a_busy_answer_without_a_json_body_is_still_busy() -> None:
    wifi = channel(lambda r: httpx.Response(503, text="<h1>maintenance</h1>"))
    with wifi, pytest.raises(ServerBusy):
        wifi.send(a_batch())


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html><body>Welcome to Hotel WiFi, please log in</body></html>",
                       headers={"content-type": "text/html"}),
        httpx.Response(200, json={"hello": "world"}),
        httpx.Response(200, content=b""),
        httpx.Response(302, headers={"location": "http://portal.example/login"}),
        httpx.Response(511, text="network authentication required"),
        httpx.Response(407, text="proxy auth"),
        httpx.Response(404, text="<html>not here</html>"),
    ],
)  # fmt: skip
def test_answers_not_from_the_server_are_link_failures(response: httpx.Response) -> None:
    with channel(lambda r: response) as wifi, pytest.raises(LinkFailure) as caught:
        wifi.send(a_batch())
    assert caught.value.retryable and caught.value.status == response.status_code


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow"),
        httpx.ReadTimeout("slow"),
        httpx.ReadError("reset by peer"),
        httpx.WriteError("broken pipe"),
        httpx.RemoteProtocolError("server disconnected"),
    ],
)
def test_network_errors_are_link_failures_translated_with_from(exc: httpx.HTTPError) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise exc

    with channel(handle) as wifi, pytest.raises(LinkFailure) as caught:
        wifi.send(a_batch())
    assert caught.value.__cause__ is exc
    assert caught.value.batch_id == "batch-1" and caught.value.channel == "wifi"


def test_local_address_and_transport_are_exclusive() -> None:
    with pytest.raises(ValueError):
        channel(error(500, "unused"), local_address="127.0.0.1")


class _Quiet(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def loopback_server(server: RealServer) -> Iterator[tuple[str, list[str]]]:
    """The real server's app on a real socket on 127.0.0.1, recording each peer address."""
    peers: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        peers.append(environ["REMOTE_ADDR"])
        return server.app(environ, start_response)

    httpd = wsgiref.simple_server.make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=httpd.serve_forever, name="loopback-http")
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", peers
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_local_address_binds_the_source_ip_on_a_real_socket(
    loopback_server: tuple[str, list[str]], device: Enrolled
) -> None:
    url, peers = loopback_server
    # 127.0.0.2 is loopback too, but not the default source address: only a real
    # bind makes the server see it.
    with HttpChannel("wifi", url, device.token, local_address="127.0.0.2") as wifi:
        ack = wifi.send(a_batch(device_id=device.device_id))
    assert [r.status for r in ack.results] == ["applied", "applied"]
    assert peers == ["127.0.0.2"]


def test_an_unreachable_server_is_a_link_failure_on_a_real_socket() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    wifi = HttpChannel("wifi", f"http://127.0.0.1:{port}", "tok", timeout=2.0)
    with wifi, pytest.raises(LinkFailure, match="ConnectError"):
        wifi.send(a_batch())


# -- through the client -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("handler", "kind", "reason"),
    [
        (error(401, "unauthorized", "bad token"), AuthRejected, "unauthorized"),
        (error(403, "device_revoked", "device was revoked"), AuthRejected, "device_revoked"),
        (error(426, "upgrade_required", "protocol 2 only"), UpgradeRequired, "upgrade required"),
        (error(400, "malformed_batch", "seq must increase"), BatchRefused, "malformed_batch"),
    ],
)
def test_refusals_stop_the_sync_without_touching_the_outbox(
    make_client: MakeClient,
    sleeps: list[float],
    handler: Handler,
    kind: type[SyncStopped],
    reason: str,
) -> None:
    requests: list[httpx.Request] = []

    def counting(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return handler(request)

    client = make_client([channel(counting), channel(counting, "cellular", metered=True)])
    with client.transaction():
        client.record("customers", "c1", {"name": "A"})
        client.record("customers", "c2", {"name": "B"})
    before = [(e.op_id, e.seq, e.state, e.fields, e.code) for e in client.entries()]

    report = client.sync_now()
    assert isinstance(report.last_error, kind)
    assert (report.batches, report.remaining, len(requests), sleeps) == (0, 2, 1, [])
    assert [(e.op_id, e.seq, e.state, e.fields, e.code) for e in client.entries()] == before
    status = client.status()
    assert status.stopped is not None and reason in status.stopped
    assert status.channel == "wifi"


def test_a_captive_portal_is_not_a_delivery_and_cellular_takes_over(
    make_client: MakeClient, sleeps: list[float], link: Link, server: RealServer, device: Enrolled
) -> None:
    portal = httpx.Response(
        200, text="<html>Hotel WiFi login</html>", headers={"content-type": "text/html"}
    )
    client = make_client([channel(lambda r: portal), link("cellular", metered=True)])
    op = client.record("customers", "c1", {"name": "A"})
    report = client.sync_now()
    assert sleeps == [3.0, 30.0]
    assert report.applied == 1 and server.applied(device) == {op}


def test_a_captive_portal_alone_acks_nothing(make_client: MakeClient) -> None:
    portal = httpx.Response(200, text="<html>login</html>", headers={"content-type": "text/html"})
    client = make_client([channel(lambda r: portal)], retry=RetryPolicy(max_attempts=4))
    client.record("customers", "c1", {"name": "A"})
    report = client.sync_now()
    assert isinstance(report.last_error, LinkFailure) and isinstance(
        report.last_error, TransportError
    )
    assert "not an ack" in str(report.last_error)
    assert client.stats()["pending"] == 1 and client.stats()["acked"] == 0


# -- ChannelSet -------------------------------------------------------------------------------


def test_channel_set_cycles_and_resets() -> None:
    wifi, cell = Offline("wifi"), Offline("cellular")
    channels = ChannelSet([wifi, cell])
    assert channels.current is wifi
    assert channels.advance() and channels.current is cell
    assert channels.advance() and channels.current is wifi
    channels.advance()
    channels.reset()
    assert channels.current is wifi
    assert not ChannelSet([wifi]).advance()
    with pytest.raises(ValueError):
        ChannelSet([])
    with pytest.raises(ValueError):
        ChannelSet([wifi, Offline("wifi")])


def test_closing_the_client_closes_its_channels(make_client: MakeClient, link: Link) -> None:
    wifi = link("wifi")
    make_client([wifi]).close()
    assert wifi.closed
