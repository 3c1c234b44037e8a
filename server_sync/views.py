"""The sync blueprint: decode the request, call a service function, encode the answer."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import LengthRequired

from protocol import ProtocolError, compress, decode_batch, decompress, encode_ack
from protocol.constants import CONTENT_ENCODINGS, MAX_WIRE_BYTES, MEDIA_TYPE

from .auth import authenticate
from .delivery import deliver
from .errors import PayloadTooLarge, Unavailable, UnsupportedMediaType, first_line
from .extension import server_state
from .metrics import observe_ack
from .ratelimit import admit
from .service import apply_batch

sync = Blueprint("sync", __name__)


@sync.post("/v1/batches")
def post_batch() -> Response:
    """Apply a device's batch; answer one result per entry."""
    state = server_state(current_app)
    # Without a rate limit the token check only reads: no write lock on SQLite.
    engine = state.engine if state.rate_limit.enabled else state.reader
    with engine.begin() as conn:
        device_id = authenticate(conn, request.headers.get("Authorization"))
        # Shed load before reading the body. A refusal rolls this transaction back,
        # so a refused batch does not use up the window.
        admit(conn, device_id, state.rate_limit, time.time())
    _require_media_type()
    body = decompress(_read_body(), _content_encoding())
    batch = decode_batch(body)
    started = time.perf_counter()
    with state.engine.begin() as conn:
        ack = apply_batch(conn, device_id, batch, state.registry)
        ack = deliver(conn, device_id, batch, ack, datetime.now(UTC))
    observe_ack(ack, time.perf_counter() - started)
    return _ack_response(encode_ack(ack))


@sync.get("/healthz")
def healthz() -> Response:
    """200 if the database answers."""
    try:
        with server_state(current_app).reader.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.SQLAlchemyError as exc:
        raise Unavailable(f"database unreachable: {first_line(exc)}") from exc
    return jsonify(status="ok")


def _ack_response(data: bytes) -> Response:
    """The ack, gzipped when the device accepts it (acks of 500 entries compress ~10x)."""
    response = Response(data, status=200, mimetype=MEDIA_TYPE)
    response.vary.add("Accept-Encoding")
    if request.accept_encodings["gzip"]:
        response.set_data(compress(data, "gzip"))
        response.headers["Content-Encoding"] = "gzip"
    return response


#: Bytes read from the request stream at a time.
_READ_CHUNK = 64 * 1024


def _read_body() -> bytes:
    """The whole request body, chunked or not: 413 past the limit, never a truncated read."""
    limit = current_app.config.get("MAX_CONTENT_LENGTH") or MAX_WIRE_BYTES
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(
            f"body is {length} bytes; at most {limit}", {"limit": limit, "length": length}
        )
    if length is None and "wsgi.input_terminated" not in request.environ:
        if "Transfer-Encoding" not in request.headers:
            return b""  # neither header: the body is empty (RFC 9112, 6.3)
        # A chunked body on a server that does not end the stream: reading could
        # wait for ever, and werkzeug would hand us an empty body instead.
        raise LengthRequired("this server needs a Content-Length")
    stream = request.environ["wsgi.input"]
    want = limit + 1 if length is None else length
    chunks: list[bytes] = []
    got = 0
    while got < want:
        chunk = stream.read(min(_READ_CHUNK, want - got))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    if got > limit:
        raise PayloadTooLarge(f"body is over {limit} bytes", {"limit": limit})
    if length is not None and got < length:
        raise ProtocolError(f"body ended after {got} of its {length} bytes")
    return b"".join(chunks)


def _require_media_type() -> None:
    if request.mimetype != MEDIA_TYPE:
        raise UnsupportedMediaType(
            f"Content-Type must be {MEDIA_TYPE}",
            {"content_type": request.content_type or ""},
        )


def _content_encoding() -> str:
    encoding = (request.headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding not in CONTENT_ENCODINGS:
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding!r} not supported (use one of {CONTENT_ENCODINGS})",
            {"content_encoding": encoding, "accepted": list(CONTENT_ENCODINGS)},
        )
    return encoding
