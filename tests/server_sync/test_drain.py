"""The app reads a body it refused to its end before answering, so a proxy sending it is not
cut off (gunicorn closing on unread bytes made nginx answer 502 instead of our 401/429)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import EnvironBuilder

from protocol.codec import compress, encode_batch
from protocol.constants import MAX_WIRE_BYTES
from server_sync.drain import drain
from tests.server_sync.conftest import Wire


class Input(io.BytesIO):
    """A request body that remembers whether it was read to the end."""

    def at_end(self) -> bool:
        return self.tell() == len(self.getvalue())


def _call(app: Flask, environ: dict[str, Any]) -> str:
    status: list[str] = []
    body = environ["wsgi.input"]
    answer = app(environ, lambda s, _h, _e=None: status.append(s))
    assert body.at_end()  # drained before a byte of the answer is sent
    b"".join(answer)
    return status[0]


@pytest.mark.parametrize(
    ("token", "content_type", "status"),
    [(False, "application/json", "401"), (True, "text/plain", "415")],
    ids=["no-token", "wrong-type"],
)
def test_a_refused_body_is_read_to_its_end_before_the_answer(
    app: Flask, wire: Wire, token: bool, content_type: str, status: str
) -> None:
    headers = {"Content-Type": content_type, "Content-Encoding": "gzip"}
    if token:
        headers["Authorization"] = f"Bearer {wire.token}"
    body = Input(b"x" * 1_000_000)
    environ = EnvironBuilder("/v1/batches", method="POST", headers=headers).get_environ()
    environ.update({"wsgi.input": body, "CONTENT_LENGTH": str(len(body.getvalue()))})
    assert _call(app, environ).startswith(status)


def test_drain_stops_at_the_wire_limit_and_at_the_declared_length() -> None:
    big = Input(bytes(MAX_WIRE_BYTES + 10))
    assert drain({"wsgi.input": big, "CONTENT_LENGTH": str(MAX_WIRE_BYTES + 10)}) == MAX_WIRE_BYTES
    short = Input(b"abcdef")
    assert drain({"wsgi.input": short, "CONTENT_LENGTH": "4"}) == 4


@pytest.mark.parametrize("length", ["", "-1", "1e3", "١٢", " 12x"])
def test_drain_reads_nothing_without_a_plain_length_or_end_marker(length: str) -> None:
    body = Input(b"abc")
    assert drain({"wsgi.input": body, "CONTENT_LENGTH": length}) == 0
    assert body.tell() == 0


def test_drain_reads_a_terminated_body_without_a_length() -> None:
    body = Input(b"chunked body, already de-chunked by the server")
    assert drain({"wsgi.input": body, "wsgi.input_terminated": True}) == len(body.getvalue())


class Socketlike(Input):
    """A raw socket stream (wsgiref's): reading past the body would block for ever."""

    def read(self, size: int | None = -1) -> bytes:
        assert not self.at_end(), "read past the body: on a socket this blocks"
        return super().read(size)

    def readinto(self, buffer: Any) -> int:
        assert not self.at_end(), "read past the body: on a socket this blocks"
        return super().readinto(buffer)


def test_a_body_the_app_read_is_not_read_again(app: Flask, wire: Wire) -> None:
    body = Socketlike(compress(encode_batch(wire.batch(wire.entry(1)))))
    headers = {
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
        "Authorization": f"Bearer {wire.token}",
    }
    environ = EnvironBuilder("/v1/batches", method="POST", headers=headers).get_environ()
    environ.update({"wsgi.input": body, "CONTENT_LENGTH": str(len(body.getvalue()))})
    assert _call(app, environ).startswith("200")
