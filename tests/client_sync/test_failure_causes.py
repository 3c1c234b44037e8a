"""Every attempt failure reaches the sync report from its real cause, with its reason code.

Each test makes the cause for real on 127.0.0.1 (a refused port, a name under
``.invalid``, a server that never answers, certificates made here and a real TLS
server in front of the real app, a captive portal, the real server refusing), runs a
real ``SyncClient.sync_now()`` and checks the report's reason, the error's, and that
every entry is still pending. Where the cause can be taken away (the certificate
renewed, the portal logged into), the same outbox then delivers everything once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from client_sync import HttpChannel, OutboxConfig, RetryPolicy, SyncClient, SyncReport
from client_sync.errors import LinkFailure, ServerBusy, SyncStopped, TransportError
from client_sync.tls import spki_pin
from protocol.reasons import Reason
from server_sync.auth import revoke_device
from tests._causes import (
    Authority,
    full_backlog,
    portal,
    refusing_port,
    serve,
    silent_server,
)
from tests._doubles import Enrolled, RealServer

MakeClient = Callable[..., SyncClient]

#: One attempt per sync_now(): the report is that attempt's (the retry schedule is
#: tested elsewhere); a small channel timeout drives the waits of the timeout tests.
ONE_TRY = RetryPolicy(max_attempts=1)
SHORT = 0.5


def record_two(client: SyncClient) -> list[str]:
    with client.transaction():
        return [
            client.record("customers", "c1", {"name": "Wang Fang"}),
            client.record("customers", "c2", {"name": "Li Lei"}),
        ]


def failed_with(client: SyncClient, reason: Reason, kind: type[Exception]) -> SyncReport:
    """sync_now() once; the report says ``reason``; every entry is still pending."""
    acked = client.stats()["acked"]
    report = client.sync_now()
    assert isinstance(report.last_error, kind), report.last_error
    assert report.reason == reason, report.last_error
    assert getattr(report.last_error, "reason", None) == reason
    assert report.why is not None and f"[{reason}]" in report.why
    assert (report.batches, report.remaining) == (0, 2)
    assert client.stats()["pending"] == 2 and client.stats()["acked"] == acked
    assert client.status().reason == reason
    return report


def delivered(client: SyncClient, server: RealServer, device: Enrolled, ops: list[str]) -> None:
    """The cause is gone: the same outbox delivers every entry, once."""
    report = client.sync_now()
    assert (report.applied, report.remaining, report.reason) == (2, 0, None)
    assert server.applied(device) == set(ops)


@pytest.fixture
def ca(tmp_path: Path) -> Authority:
    """The CA the device trusts (its ca_bundle)."""
    return Authority(tmp_path, "trusted CA")


@pytest.fixture
def https_server(server: RealServer, ca: Authority) -> Iterator[str]:
    """The real app over TLS with a valid certificate from the trusted CA."""
    with serve(server.app, ca.valid().context()) as url:
        yield url


def https(url: str, device: Enrolled, ca: Authority, **kw: object) -> HttpChannel:
    return HttpChannel("wifi", url, device.token, ca_bundle=ca.bundle, timeout=10, **kw)  # type: ignore[arg-type]


# -- the link ------------------------------------------------------------------------


def test_a_refused_connection_is_network_unreachable(
    make_client: MakeClient, device: Enrolled
) -> None:
    with refusing_port() as url:
        client = make_client([HttpChannel("wifi", url, device.token)], retry=ONE_TRY)
        record_two(client)
        failed_with(client, Reason.NETWORK_UNREACHABLE, LinkFailure)


def test_a_name_that_does_not_resolve_is_dns_failure(
    make_client: MakeClient, device: Enrolled
) -> None:
    # RFC 6761: no .invalid name ever resolves.
    channel = HttpChannel("wifi", "https://sync.fieldsync.invalid", device.token, timeout=10)
    client = make_client([channel], retry=ONE_TRY)
    record_two(client)
    failed_with(client, Reason.DNS_FAILURE, LinkFailure)


def test_a_server_that_never_answers_is_a_timeout(
    make_client: MakeClient, device: Enrolled
) -> None:
    with silent_server() as url:  # connects, takes the request, never answers
        channel = HttpChannel("wifi", url, device.token, timeout=SHORT)
        client = make_client([channel], retry=ONE_TRY)
        record_two(client)
        failed_with(client, Reason.TIMEOUT, LinkFailure)


def test_a_connect_nobody_answers_is_a_timeout(make_client: MakeClient, device: Enrolled) -> None:
    with full_backlog() as url:  # the SYN is dropped: the connect itself times out
        channel = HttpChannel("wifi", url, device.token, timeout=SHORT)
        client = make_client([channel], retry=ONE_TRY)
        record_two(client)
        report = failed_with(client, Reason.TIMEOUT, LinkFailure)
        assert "ConnectTimeout" in str(report.last_error)


# -- TLS ---------------------------------------------------------------------------------


def test_a_trusted_certificate_delivers_over_tls(
    make_client: MakeClient, server: RealServer, device: Enrolled, ca: Authority, https_server: str
) -> None:
    client = make_client([https(https_server, device, ca)], retry=ONE_TRY)
    ops = record_two(client)
    delivered(client, server, device, ops)


def test_an_expired_certificate_from_a_trusted_ca_is_tls_certificate_expired(
    make_client: MakeClient, server: RealServer, device: Enrolled, ca: Authority
) -> None:
    with serve(server.app, ca.expired().context()) as url:
        client = make_client([https(url, device, ca)], retry=ONE_TRY)
        ops = record_two(client)
        report = failed_with(client, Reason.TLS_CERTIFICATE_EXPIRED, LinkFailure)
        assert "certificate has expired" in str(report.last_error)
    assert server.applied(device) == set()  # the request never left the device
    with serve(server.app, ca.valid("renewed").context()) as renewed:
        client.close()
        client = make_client([https(renewed, device, ca)], retry=ONE_TRY)
        delivered(client, server, device, ops)


def test_a_valid_certificate_from_another_ca_is_tls_certificate_untrusted(
    make_client: MakeClient, server: RealServer, device: Enrolled, ca: Authority, tmp_path: Path
) -> None:
    stranger = Authority(tmp_path, "another CA")
    with serve(server.app, stranger.valid().context()) as url:
        client = make_client([https(url, device, ca)], retry=ONE_TRY)
        record_two(client)
        report = failed_with(client, Reason.TLS_CERTIFICATE_UNTRUSTED, LinkFailure)
        assert "unable to get local issuer certificate" in str(report.last_error)
    assert server.applied(device) == set()


def test_the_system_store_does_not_trust_a_private_ca(
    make_client: MakeClient, device: Enrolled, https_server: str
) -> None:
    # No ca_bundle: the system's CAs only, and the test's CA is not one of them.
    channel = HttpChannel("wifi", https_server, device.token, timeout=10)
    client = make_client([channel], retry=ONE_TRY)
    record_two(client)
    failed_with(client, Reason.TLS_CERTIFICATE_UNTRUSTED, LinkFailure)


def test_no_ca_bundle_means_the_systems_store(
    make_client: MakeClient,
    server: RealServer,
    device: Enrolled,
    ca: Authority,
    https_server: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # OpenSSL's default verify paths are the system store; SSL_CERT_FILE moves them.
    # Trusting the test's CA through it proves the channel uses that store (not, say,
    # a CA list bundled with httpx).
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.bundle))
    client = make_client([HttpChannel("wifi", https_server, device.token)], retry=ONE_TRY)
    delivered(client, server, device, record_two(client))


def test_a_pinned_key_delivers_and_another_key_is_untrusted(
    make_client: MakeClient, server: RealServer, device: Enrolled, ca: Authority
) -> None:
    pinned, other = ca.valid("pinned"), ca.valid("other-key")
    pin = spki_pin(pinned.cert.read_bytes())
    with serve(server.app, other.context()) as url:
        # Verified by the trusted CA, but not the pinned key: refused in the handshake.
        client = make_client([https(url, device, ca, pins=[pin])], retry=ONE_TRY)
        ops = record_two(client)
        report = failed_with(client, Reason.TLS_CERTIFICATE_UNTRUSTED, LinkFailure)
        assert "not one of the 1 pinned keys" in str(report.last_error)
    assert server.applied(device) == set()
    with serve(server.app, pinned.context()) as url:
        client.close()
        client = make_client([https(url, device, ca, pins=[pin])], retry=ONE_TRY)
        delivered(client, server, device, ops)


# -- answers that are not the server's ------------------------------------------------------

LOGIN_PAGE = b"<html><body><form action='/login'>Hotel WiFi: room number</form></body></html>"


@pytest.mark.parametrize(
    ("status", "headers", "body"),
    [
        ("200 OK", [("Content-Type", "text/html")], LOGIN_PAGE),
        ("302 Found", [("Location", "http://login.hotel-wifi.invalid/?r=x")], b""),
        ("511 Network Authentication Required", [("Content-Type", "text/html")], LOGIN_PAGE),
        ("403 Forbidden", [("Content-Type", "text/html")], b"<h1>blocked by policy</h1>"),
    ],
    ids=["login-page", "redirect-elsewhere", "511", "firewall-403"],
)
def test_an_answer_that_is_not_the_servers_is_captive_portal(
    make_client: MakeClient,
    server: RealServer,
    device: Enrolled,
    status: str,
    headers: list[tuple[str, str]],
    body: bytes,
) -> None:
    with serve(portal(status, headers, body)) as url:
        client = make_client([HttpChannel("wifi", url, device.token)], retry=ONE_TRY)
        ops = record_two(client)
        report = failed_with(client, Reason.CAPTIVE_PORTAL, LinkFailure)
        assert report.last_error is not None and not isinstance(report.last_error, SyncStopped)
        assert client.status().stopped is None  # a portal never stops syncing
    with serve(server.app) as url:  # the rep logged in: the link reaches the server
        client.close()
        client = make_client([HttpChannel("wifi", url, device.token)], retry=ONE_TRY)
        delivered(client, server, device, ops)


# -- the server's answers ------------------------------------------------------------------


def test_a_server_failure_is_server_error(
    make_client: MakeClient, server: RealServer, device: Enrolled
) -> None:
    with server.engine.begin() as conn:  # the server's database refuses these rows
        conn.exec_driver_sql(
            "CREATE TRIGGER broken BEFORE INSERT ON ops "
            "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
        )
    client = make_client([server.channel(device)], retry=ONE_TRY)
    record_two(client)
    report = failed_with(client, Reason.SERVER_ERROR, ServerBusy)
    assert report.last_error is not None and getattr(report.last_error, "status", 0) == 500


def test_the_load_limit_is_rate_limited(make_client: MakeClient, tmp_path: Path) -> None:
    limited = RealServer(tmp_path / "limited.db", RATE_LIMIT_DEVICE=1, RATE_LIMIT_WINDOW=3600)
    try:
        device = limited.enrol()
        client = make_client([limited.channel(device)], retry=ONE_TRY, device_id=device.device_id)
        client.record("leads", "l0", {"name": "first batch of the hour"})
        assert client.sync_now().applied == 1
        record_two(client)
        report = failed_with(client, Reason.RATE_LIMITED, ServerBusy)
        assert isinstance(report.last_error, TransportError) and report.last_error.retryable
    finally:
        limited.close()


def test_a_revoked_device_is_device_revoked(
    make_client: MakeClient, server: RealServer, device: Enrolled
) -> None:
    with server.engine.begin() as conn:
        revoke_device(conn, device.device_id)
    client = make_client([server.channel(device)], retry=ONE_TRY)
    record_two(client)
    failed_with(client, Reason.DEVICE_REVOKED, SyncStopped)
    assert "device_revoked" in (client.status().stopped or "")


def test_a_token_the_server_does_not_know_is_unauthorised(
    make_client: MakeClient, server: RealServer, device: Enrolled
) -> None:
    impostor = Enrolled(device.device_id, "not-a-token-the-server-issued")
    client = make_client([server.channel(impostor)], retry=ONE_TRY)
    record_two(client)
    failed_with(client, Reason.UNAUTHORISED, SyncStopped)


def test_an_old_protocol_is_upgrade_required(
    make_client: MakeClient, server: RealServer, device: Enrolled
) -> None:
    old_app = OutboxConfig(protocol_version="1.0")
    client = make_client([server.channel(device)], retry=ONE_TRY, config=old_app)
    record_two(client)
    failed_with(client, Reason.UPGRADE_REQUIRED, SyncStopped)
