"""Read the rest of a request body the app did not read, before the answer goes out.

The app answers some requests without reading their body (401, 403, 429, 415 come
first, by design: refusing is cheap). gunicorn then closes the connection with the
body's unread bytes still queued, the kernel answers them with a reset, and a proxy
still sending the body (nginx, the production front) gets a broken pipe and answers
502 instead of our 401 or 429: the device retries as if the server were busy and
never learns it was refused. Draining up to the wire limit first avoids that; behind
nginx, or on waitress, the body is already buffered on this machine, so it costs a
local copy and no parsing.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from werkzeug.exceptions import ClientDisconnected
from werkzeug.wsgi import LimitedStream

from protocol.constants import MAX_WIRE_BYTES

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

#: Bytes read per call while draining.
CHUNK = 64 * 1024

_LENGTH = re.compile(r"[0-9]{1,12}")


def drain_request_body(app: WSGIApplication) -> WSGIApplication:
    """Wrap ``app`` so the request body is read to its end before the answer is sent."""

    def wrapped(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        declared = _declared(environ)
        if declared is not None and environ.get("wsgi.input") is not None:
            # Counts what the app reads, so the drain reads only the rest: a raw
            # socket stream (wsgiref) would block for bytes that never come.
            environ["wsgi.input"] = LimitedStream(environ["wsgi.input"], declared)
        answer = app(environ, start_response)
        with contextlib.suppress(ClientDisconnected):  # hung up mid-body: nothing left
            drain(environ)
        return answer

    return wrapped


def drain(environ: WSGIEnvironment) -> int:
    """Read and drop what is left of the body, up to MAX_WIRE_BYTES; return the bytes read."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return 0
    text = str(environ.get("CONTENT_LENGTH") or "").strip()
    declared = _declared(environ)
    if text and declared is None:
        return 0
    if declared is None and not environ.get("wsgi.input_terminated"):
        return 0  # no length and no end marker (PEP 3333): reading could block
    # Over the limit the client is refused anyway, and a proxy never sends that much.
    left = min(declared, MAX_WIRE_BYTES) if declared is not None else MAX_WIRE_BYTES
    read = 0
    while left > 0:
        chunk = stream.read(min(CHUNK, left))
        if not chunk:
            break
        read += len(chunk)
        left -= len(chunk)
    return read


def _declared(environ: WSGIEnvironment) -> int | None:
    """The Content-Length if it is plain ASCII digits, else None."""
    text = str(environ.get("CONTENT_LENGTH") or "").strip()
    return int(text) if _LENGTH.fullmatch(text) else None
