"""Serving over TLS as the README shows: gunicorn --certfile/--keyfile, or nginx in front.

Certificates are made in the test (tests/_causes.py); the device trusts the test's CA
through ``ca_bundle`` and pins the server's key. Real processes on 127.0.0.1.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from client_sync import HttpChannel, RetryPolicy, SyncClient
from client_sync.tls import spki_pin
from protocol.reasons import Reason
from simulations.procs import HOST, Enrolment, enrol, server_cli
from tests._causes import Authority, Issued
from tests.server_sync.front import gunicorn, nginx, nginx_binary

pytestmark = pytest.mark.slow

KEY = bytes(range(32))


def device_client(
    outbox: Path, device: Enrolment, port: int, ca: Authority, pinned: Issued
) -> SyncClient:
    """The device's outbox, syncing to https://127.0.0.1:port, trusting ``ca``, pinning a key."""
    channel = HttpChannel(
        "wifi", f"https://{HOST}:{port}", device.token, ca_bundle=ca.bundle,
        pins=[spki_pin(pinned.cert.read_bytes())], timeout=30,
    )  # fmt: skip
    return SyncClient(
        outbox, KEY, device_id=device.device_id, channels=[channel],
        retry=RetryPolicy(max_attempts=1),
    )  # fmt: skip


def record_two(client: SyncClient) -> None:
    client.record("customers", "c1", {"name": "Wang Fang"})
    client.record("customers", "c2", {"name": "Li Lei"})


def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'server.db'}"
    server_cli("db", "upgrade", database_url=url)
    return url


def test_gunicorn_serves_tls_itself(tmp_path: Path) -> None:
    url = database(tmp_path)
    ca = Authority(tmp_path)
    cert = ca.valid()
    device = enrol("tls-rep", url)
    with gunicorn(url, tmp_path / "gunicorn.log", tls=(cert.cert, cert.key)) as app:
        client = device_client(tmp_path / "outbox.db", device, app.port, ca, cert)
        with client:
            record_two(client)
            report = client.sync_now()
    assert (report.applied, report.remaining, report.reason) == (2, 0, None)


@pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed (.ci/run installs it)")
def test_nginx_terminates_tls_in_front_of_gunicorn(tmp_path: Path) -> None:
    url = database(tmp_path)
    ca = Authority(tmp_path)
    expired, renewed = ca.expired(), ca.valid("renewed")
    device = enrol("tls-rep", url)
    outbox = tmp_path / "outbox.db"
    with gunicorn(url, tmp_path / "gunicorn.log", workers=1) as app:
        upstream = f"{HOST}:{app.port}"
        with nginx(upstream, tls=(expired.cert, expired.key)) as front:
            with device_client(outbox, device, front.port, ca, renewed) as client:
                record_two(client)
                report = client.sync_now()
            assert (report.reason, report.remaining) == (Reason.TLS_CERTIFICATE_EXPIRED, 2)
        with nginx(upstream, tls=(renewed.cert, renewed.key)) as front:
            with device_client(outbox, device, front.port, ca, renewed) as client:
                report = client.sync_now()
            assert (report.applied, report.remaining, report.reason) == (2, 0, None)
