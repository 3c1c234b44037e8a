"""Real causes of failed attempts, on 127.0.0.1: certificates, TLS servers, silent sockets.

``Authority`` is a certificate authority made in the test with ``cryptography``; it
issues server certificates for 127.0.0.1 with any validity period. ``serve`` runs a
WSGI app (the real server's, or a captive portal's) on a real socket on 127.0.0.1,
over TLS when given a context, in a thread it joins. ``silent_server`` accepts TCP
connections (the kernel completes them) and never answers; ``full_backlog`` is a
listener whose queue is full, so a connect gets no answer at all.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

HOST = "127.0.0.1"
DAY = datetime.timedelta(days=1)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Any]


@dataclass(frozen=True)
class Issued:
    """A server certificate and its key, as PEM files."""

    cert: Path
    key: Path

    def context(self) -> ssl.SSLContext:
        """A server-side TLS context presenting this certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


class Authority:
    """A CA made here: its certificate in ``bundle`` (what a client trusts), and issuance."""

    def __init__(self, folder: Path, name: str = "fieldsync test CA") -> None:
        self.folder = folder
        self.name = name
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - DAY)
            .not_valid_after(now + 30 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.bundle = folder / f"{_slug(name)}.pem"
        self.bundle.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self, label: str, *, valid_from: datetime.timedelta, valid_to: datetime.timedelta
    ) -> Issued:
        """A certificate for 127.0.0.1 and localhost, valid from/to now + the offsets."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        names = [x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, label)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + valid_from)
            .not_valid_after(now + valid_to)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        stem = self.folder / f"{_slug(self.name)}-{label}"
        issued = Issued(stem.with_suffix(".crt"), stem.with_suffix(".key"))
        issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        issued.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return issued

    def valid(self, label: str = "valid") -> Issued:
        """A certificate valid from yesterday to next week."""
        return self.issue(label, valid_from=-DAY, valid_to=7 * DAY)

    def expired(self, label: str = "expired") -> Issued:
        """A certificate that was valid for a while and expired yesterday."""
        return self.issue(label, valid_from=-30 * DAY, valid_to=-DAY)


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any) -> None:
        pass


@contextmanager
def serve(app: WsgiApp, tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port) in a thread; yield its base URL."""
    server: BaseWSGIServer = make_server(
        HOST, 0, app, threaded=True, request_handler=_Quiet, ssl_context=tls
    )
    thread = threading.Thread(target=server.serve_forever, name="test-wsgi-server")
    thread.start()
    try:
        scheme = "https" if tls is not None else "http"
        yield f"{scheme}://{HOST}:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def silent_server() -> Iterator[str]:
    """A listener the kernel completes connections for, that never reads or answers."""
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        listener.listen(16)
        yield f"http://{HOST}:{listener.getsockname()[1]}"


@contextmanager
def full_backlog() -> Iterator[str]:
    """A listener whose accept queue is full: a new connect's SYN is dropped, unanswered."""
    with ExitStack() as stack:
        listener = stack.enter_context(socket.socket())
        listener.bind((HOST, 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        queued = stack.enter_context(socket.create_connection((HOST, port), timeout=5))
        assert queued.getpeername()[1] == port
        yield f"http://{HOST}:{port}"


@contextmanager
def refusing_port() -> Iterator[str]:
    """A port bound (so nobody else takes it) and not listening: a connect is refused."""
    with socket.socket() as bound:
        bound.bind((HOST, 0))
        yield f"http://{HOST}:{bound.getsockname()[1]}"


def portal(status: str, headers: list[tuple[str, str]], body: bytes) -> WsgiApp:
    """A captive portal: every request gets the same answer."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response(status, [*headers, ("Content-Length", str(len(body)))])
        return [body]

    return app


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower())
