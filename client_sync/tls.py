"""The client's TLS: verify against the system store or a CA bundle, optionally pin keys.

Verification is always on: there is no option to turn it off. ``ca_bundle`` replaces
the system store (only the CAs in that PEM file are trusted: a private CA).
``pins`` add a check after verification, never instead of it: the server's leaf
certificate must carry one of the pinned public keys, each given as
``sha256/<base64 of the SHA-256 of its DER SubjectPublicKeyInfo>`` (the form
OkHttp and HPKP use). The check runs inside the handshake (``PinnedSocket``), before a
byte of the request, so the bearer token never reaches a server with the wrong key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import ssl
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = ["PinMismatch", "client_context", "spki_pin"]

#: ``sha256/`` then the 44 base64 characters of 32 bytes; bounded before any decode.
_PIN = re.compile(r"sha256/[A-Za-z0-9+/]{43}=", re.ASCII)


class PinMismatch(ssl.SSLCertVerificationError):
    """The server's certificate verified, but its public key is not one of the pins."""


def spki_pin(certificate: bytes) -> str:
    """The pin (``sha256/<base64>``) of a certificate's public key; PEM or DER bytes."""
    if certificate.lstrip().startswith(b"-----BEGIN"):
        cert = x509.load_pem_x509_certificate(certificate)
    else:
        cert = x509.load_der_x509_certificate(certificate)
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return "sha256/" + base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


def parse_pins(pins: Iterable[str]) -> frozenset[str]:
    """The pins, checked: each ``sha256/`` + base64 of 32 bytes (ValueError otherwise)."""
    if isinstance(pins, str):
        raise ValueError("pins is a list of pins, not one string")
    parsed = set()
    for pin in pins:
        if not isinstance(pin, str) or len(pin) != 51 or not _PIN.fullmatch(pin):
            raise ValueError(f"a pin is 'sha256/' and 44 base64 characters, not {pin!r:.80}")
        try:
            base64.b64decode(pin[7:], validate=True)
        except binascii.Error as exc:
            raise ValueError(f"pin {pin!r} is not valid base64") from exc
        parsed.add(pin)
    return frozenset(parsed)


class PinnedSocket(ssl.SSLSocket):
    """An SSLSocket that checks its context's pins once the handshake has verified."""

    def do_handshake(self, block: bool = False) -> None:
        """Handshake (OpenSSL verifies the chain and name), then check the key's pin."""
        super().do_handshake(block)
        pins: frozenset[str] = getattr(self.context, "pins", frozenset())
        if not pins:
            return
        der = self.getpeercert(binary_form=True)
        got = spki_pin(der) if der else "no certificate"
        if got not in pins:
            raise PinMismatch(
                f"the server's public key {got} is not one of the {len(pins)} pinned keys"
            )


class PinningContext(ssl.SSLContext):
    """A client SSLContext whose sockets check ``pins`` (empty: no pinning)."""

    sslsocket_class = PinnedSocket
    pins: frozenset[str] = frozenset()


def client_context(ca_bundle: str | Path | None = None, pins: Iterable[str] = ()) -> ssl.SSLContext:
    """A verifying client context: the system store or ``ca_bundle``, plus ``pins``."""
    context = PinningContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, check_hostname
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.pins = parse_pins(pins)
    if ca_bundle is None:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        return context
    try:
        context.load_verify_locations(cafile=str(ca_bundle))
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise ValueError(f"ca_bundle {ca_bundle}: not a readable PEM file of CAs ({exc})") from exc
    return context
