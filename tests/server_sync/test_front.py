"""The production shape (nginx in front of 2 gunicorn workers) survives slow clients, and
the errors nginx makes itself are JSON like the app's."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from client_sync import HttpChannel, SyncClient
from protocol.constants import MAX_WIRE_BYTES
from simulations.procs import HOST, LiveServer, free_port, server_cli
from tests.server_sync.conftest import error_of
from tests.server_sync.front import (
    SITE_CONF,
    Running,
    gunicorn,
    nginx,
    nginx_binary,
    printed_on_failure,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        nginx_binary() is None,
        reason="nginx is not installed (apt-get install nginx-light; .ci/run does)",
    ),
]

KEY = bytes(range(32))
STALLED = 200


@dataclass(frozen=True, slots=True)
class Stack:
    """nginx in front of gunicorn, on one SQLite database."""

    front: Running
    app: Running
    database_url: str

    @property
    def logs(self) -> tuple[Path, ...]:
        """nginx's and gunicorn's logs."""
        return (*self.front.logs, *self.app.logs)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("front")
    url = f"sqlite:///{base / 'server.db'}"
    server_cli("db", "upgrade", database_url=url)
    with gunicorn(url, base / "gunicorn.log") as app, nginx(f"{HOST}:{app.port}") as front:
        yield Stack(front, app, url)


def test_stalled_clients_leave_the_server_serving(stack: Stack, tmp_path: Path) -> None:
    with printed_on_failure(*stack.logs):
        _stalled_clients_leave_the_server_serving(stack, tmp_path)


def _stalled_clients_leave_the_server_serving(stack: Stack, tmp_path: Path) -> None:
    stalls = [_stall(stack.front.port, with_body=i % 2 == 0) for i in range(STALLED)]
    try:
        device = LiveServer(stack.front.url, stack.database_url).enrol("behind-nginx")
        wifi = HttpChannel("wifi", stack.front.url, device.token, timeout=30)
        with SyncClient(tmp_path / "o.db", KEY, device_id=device.device_id, channels=[wifi]) as c:
            ids = []
            for t in range(3):
                with c.transaction():
                    ids += [c.record("customers", f"c{t}-{i}", {"name": "n"}) for i in range(5)]
            report = c.sync_now()
        health = httpx.get(f"{stack.front.url}/healthz", timeout=30)
        still_held = sum(_open(s) for s in stalls)
    finally:
        for s in stalls:
            s.close()
    stored = LiveServer(stack.front.url, stack.database_url).ops(device.device_id)
    assert (report.applied, report.remaining) == (15, 0), report
    assert [row.op_id for row in stored] == ids
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert still_held == STALLED  # the stalls were held the whole time, not cut short


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"GARBAGE\r\n\r\n", 400, "bad_request"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, "bad_request"),  # TLS
        (
            b"POST /v1/batches HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
            % (MAX_WIRE_BYTES + 1),
            413,
            "payload_too_large",
        ),
        (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
            431,
            "request_header_fields_too_large",
        ),
        (b"GET /_fieldsync_error/413 HTTP/1.1\r\nHost: x\r\n\r\n", 404, "not_found"),
    ],
    ids=["garbage", "tls-on-http", "body-too-large", "header-too-large", "internal-path"],
)
def test_errors_nginx_makes_are_json(stack: Stack, raw: bytes, status: int, code: str) -> None:
    with printed_on_failure(*stack.logs):
        answer = _exchange(stack.front.port, raw)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert error_of(answer)["code"] == code


def test_refused_bodies_up_to_the_limit_get_the_apps_answer(stack: Stack) -> None:
    # The app answers 401 before reading the body; it must read it anyway, or gunicorn's
    # close resets nginx mid-send and the device sees 502 (busy) instead of 401.
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    statuses = []
    with printed_on_failure(*stack.logs):
        for size in (100_000, 1_000_000, 2_000_000, 3_000_000, MAX_WIRE_BYTES):
            answer = httpx.post(
                f"{stack.front.url}/v1/batches", content=bytes(size), headers=headers, timeout=60
            )
            statuses.append((size, answer.status_code))
            if answer.status_code == 401:
                assert error_of(answer)["code"] == "unauthorized"
    assert statuses == [(size, 401) for size, _ in statuses]  # exactly the limit passes too


def test_the_body_limit_in_the_config_is_the_protocols() -> None:
    found = re.search(r"^\s*client_max_body_size\s+([0-9]+)k;", SITE_CONF.read_text(), re.M)
    assert found is not None
    assert int(found.group(1)) * 1024 == MAX_WIRE_BYTES
    assert str(MAX_WIRE_BYTES) in SITE_CONF.read_text()  # the 413 message names it


def test_a_dead_upstream_is_a_json_502_with_retry_after() -> None:
    with nginx(f"{HOST}:{free_port()}") as front:
        answer = httpx.get(f"{front.url}/healthz", timeout=30)
    assert answer.status_code == 502
    assert error_of(answer)["code"] == "bad_gateway"
    assert answer.headers["retry-after"] == "5"


def test_an_upstream_that_never_accepts_is_a_json_504() -> None:
    # A listener whose accept queue is full: the kernel drops further SYNs, so nginx's
    # connect waits out proxy_connect_timeout (5 s) and answers 504.
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind((HOST, 0))
        listener.listen(0)
        filler.connect(listener.getsockname())
        with nginx(f"{HOST}:{listener.getsockname()[1]}") as front:
            answer = httpx.get(f"{front.url}/healthz", timeout=60)
    assert answer.status_code == 504
    assert error_of(answer)["code"] == "gateway_timeout"
    assert answer.headers["retry-after"] == "5"


# -- helpers --------------------------------------------------------------------------


def _stall(port: int, *, with_body: bool) -> socket.socket:
    """A connection that sends part of a request and then nothing: headers, or no body."""
    sock = socket.create_connection((HOST, port), timeout=10)
    head = b"POST /v1/batches HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    sock.sendall(head + b"Content-Length: 100000\r\n\r\n{" if with_body else head)
    return sock


def _open(sock: socket.socket) -> bool:
    """True if the peer has neither answered nor closed the connection."""
    sock.setblocking(False)  # with a timeout set, Python would wait out EAGAIN
    try:
        sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True  # nothing to read yet: still waiting
    except OSError:
        return False
    return False  # an answer, or b"" for a close


def _exchange(port: int, raw: bytes) -> httpx.Response:
    """Send raw bytes, read one HTTP/1.1 answer (Content-Length framed) into a Response."""
    with socket.create_connection((HOST, port), timeout=30) as sock:
        sock.sendall(raw)
        data = b""
        for _ in range(1000):
            if b"\r\n\r\n" in data and len(data) >= _framed_length(data):
                break
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines]
    return httpx.Response(int(status_line.split()[1]), headers=headers, content=body)


def _framed_length(data: bytes) -> int:
    head, _, _ = data.partition(b"\r\n\r\n")
    found = re.search(rb"\r\ncontent-length:\s*([0-9]{1,9})", head, re.I)
    return len(head) + 4 + (int(found.group(1)) if found else 0)


def test_error_bodies_are_one_json_document_each() -> None:
    for body in re.findall(r"return [0-9]{3} '(.*)';", SITE_CONF.read_text()):
        error = json.loads(body.replace("\\n", ""))["error"]
        assert set(error) == {"code", "message", "details"}
