"""The failure classifier over the exception table, the answer table, and the TLS options.

Exceptions are built the way httpx raises them: an ``httpx`` error whose cause is an
``httpcore`` error holding the socket's error in ``args`` and in ``__context__``
(httpcore's pool re-raises ``from None``). The real causes, end to end, are in
test_failure_causes.py.
"""

from __future__ import annotations

import errno
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import httpcore
import httpx
import pytest

from client_sync import HttpChannel, SyncReport
from client_sync._failures import classify, of_answer
from client_sync.errors import (
    AuthRejected,
    BatchRefused,
    LinkFailure,
    OutboxError,
    ServerBusy,
    UpgradeRequired,
)
from client_sync.tls import PinMismatch, client_context, parse_pins, spki_pin
from protocol.model import Entry
from protocol.reasons import Reason
from tests._causes import Authority
from tests._doubles import outgoing

R = Reason


def as_httpx(inner: BaseException, core: type[Exception], outer: type[Exception]) -> Exception:
    """``inner`` wrapped as httpcore then httpx wrap it."""
    wrapped = core(inner)
    wrapped.__context__ = inner
    wrapped.__suppress_context__ = True  # `raise exc from None` in httpcore's pool
    error = outer(str(wrapped))
    error.__cause__ = wrapped
    return error


def cert_error(verify_code: int, message: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] {message}")
    error.verify_code = verify_code
    error.verify_message = message
    return error


def connect(inner: BaseException) -> Exception:
    return as_httpx(inner, httpcore.ConnectError, httpx.ConnectError)


TABLE: list[tuple[str, BaseException, Reason]] = [
    ("refused", connect(ConnectionRefusedError(errno.ECONNREFUSED, "refused")),
     R.NETWORK_UNREACHABLE),
    ("no route to network", connect(OSError(errno.ENETUNREACH, "unreachable")),
     R.NETWORK_UNREACHABLE),
    ("no route to host", connect(OSError(errno.EHOSTUNREACH, "no route")), R.NETWORK_UNREACHABLE),
    ("reset mid-read", as_httpx(ConnectionResetError(errno.ECONNRESET, "reset"),
                                httpcore.ReadError, httpx.ReadError), R.NETWORK_UNREACHABLE),
    ("server disconnected", httpx.RemoteProtocolError("Server disconnected"),
     R.NETWORK_UNREACHABLE),
    ("unknown name", connect(socket.gaierror(socket.EAI_NONAME, "Name or service not known")),
     R.DNS_FAILURE),
    ("resolver unreachable", connect(socket.gaierror(socket.EAI_AGAIN, "Temporary failure")),
     R.DNS_FAILURE),
    ("connect timeout", as_httpx(TimeoutError("timed out"), httpcore.ConnectTimeout,
                                 httpx.ConnectTimeout), R.TIMEOUT),
    ("read timeout", as_httpx(TimeoutError("timed out"), httpcore.ReadTimeout,
                              httpx.ReadTimeout), R.TIMEOUT),
    ("write timeout", httpx.WriteTimeout("timed out"), R.TIMEOUT),
    ("pool timeout", httpx.PoolTimeout("timed out"), R.TIMEOUT),
    ("expired", connect(cert_error(10, "certificate has expired")), R.TLS_CERTIFICATE_EXPIRED),
    ("not yet valid", connect(cert_error(9, "certificate is not yet valid")),
     R.TLS_CERTIFICATE_EXPIRED),
    ("unknown CA", connect(cert_error(20, "unable to get local issuer certificate")),
     R.TLS_CERTIFICATE_UNTRUSTED),
    ("self-signed", connect(cert_error(18, "self-signed certificate")),
     R.TLS_CERTIFICATE_UNTRUSTED),
    ("wrong host", connect(cert_error(62, "Hostname mismatch")), R.TLS_CERTIFICATE_UNTRUSTED),
    ("pin", connect(PinMismatch("not one of the pinned keys")), R.TLS_CERTIFICATE_UNTRUSTED),
    ("TLS, not the certificate", connect(ssl.SSLError(1, "[SSL] wrong version number")),
     R.NETWORK_UNREACHABLE),
    ("a bare socket timeout", TimeoutError("timed out"), R.TIMEOUT),
    ("not a network error", ValueError("a bug"), R.NETWORK_UNREACHABLE),
    ("carried", LinkFailure("login page", reason=R.CAPTIVE_PORTAL), R.CAPTIVE_PORTAL),
    ("link default", LinkFailure("offline"), R.NETWORK_UNREACHABLE),
    ("busy default", ServerBusy("500"), R.SERVER_ERROR),
    ("auth default", AuthRejected("401"), R.UNAUTHORISED),
    ("upgrade default", UpgradeRequired("426"), R.UPGRADE_REQUIRED),
    ("refused batch default", BatchRefused("400"), R.SERVER_ERROR),
]  # fmt: skip


@pytest.mark.parametrize(("exc", "reason"), [t[1:] for t in TABLE], ids=[t[0] for t in TABLE])
def test_classify_maps_each_cause_to_its_reason(exc: BaseException, reason: Reason) -> None:
    assert classify(exc) == reason


def test_every_attempt_reason_but_storage_comes_from_a_cause_or_an_answer() -> None:
    from_causes = {classify(exc) for _, exc, _ in TABLE}
    from_answers = {of_answer(s, c) for s, c in ANSWERS}
    attempt = set(list(Reason)[: list(Reason).index(R.STORAGE_LOW)])
    # captive_portal is carried: the channel's verdict on an answer (tested below).
    assert attempt - from_causes - from_answers == set()


def test_a_cycle_in_the_chain_ends() -> None:
    first, second = OSError("a"), ValueError("b")
    first.__context__, second.__context__ = second, first
    assert classify(second) == R.NETWORK_UNREACHABLE


def test_the_most_specific_cause_wins_wherever_it_is_in_the_chain() -> None:
    # A timeout while resolving is a DNS failure (the row order, not the chain order).
    resolving = connect(socket.gaierror(socket.EAI_AGAIN, "timed out"))
    resolving.__context__ = TimeoutError("timed out")
    assert classify(resolving) == R.DNS_FAILURE


ANSWERS = [(401, "unauthorized"), (403, "device_revoked"), (403, "wrong_device"),
           (429, "rate_limited"), (429, None), (426, "upgrade_required"), (426, None),
           (500, "internal"), (503, "unavailable"), (502, "bad_gateway"), (400, "malformed_batch"),
           (401, None)]  # fmt: skip


@pytest.mark.parametrize(
    ("status", "code", "reason"),
    [(401, "unauthorized", R.UNAUTHORISED), (403, "device_revoked", R.DEVICE_REVOKED),
     (403, "wrong_device", R.UNAUTHORISED), (429, "rate_limited", R.RATE_LIMITED),
     (429, None, R.RATE_LIMITED), (426, "upgrade_required", R.UPGRADE_REQUIRED),
     (426, None, R.UPGRADE_REQUIRED), (500, "internal", R.SERVER_ERROR),
     (503, "unavailable", R.SERVER_ERROR), (502, "bad_gateway", R.SERVER_ERROR),
     (400, "malformed_batch", R.SERVER_ERROR), (503, "rate_limited", R.RATE_LIMITED)],
)  # fmt: skip
def test_a_server_answer_is_classified_by_its_code_then_its_status(
    status: int, code: str | None, reason: Reason
) -> None:
    assert of_answer(status, code) == reason


# -- HttpChannel: which answers are the server's ----------------------------------------


def a_batch() -> object:
    entry = Entry("op-1", "dev-1", 1, "tx-1", 1, "1700000000000-00001-dev-1", "customers", "c1",
                  "upsert", {"name": "C1"}, 1)  # fmt: skip
    return outgoing((entry,))


def fieldsync_error(status: int, code: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": "no", "details": {}}})


HTML = {"content-type": "text/html"}


@pytest.mark.parametrize(
    ("url", "response", "kind", "reason"),
    [
        ("http://sync.test", httpx.Response(200, text="<html>log in</html>", headers=HTML),
         LinkFailure, R.CAPTIVE_PORTAL),
        ("http://sync.test", httpx.Response(204), LinkFailure, R.CAPTIVE_PORTAL),
        ("http://sync.test", httpx.Response(302, headers={"location": "http://portal.test/l"}),
         LinkFailure, R.CAPTIVE_PORTAL),
        ("http://sync.test", httpx.Response(302, headers={"location": "/login?next=/v1"}),
         LinkFailure, R.CAPTIVE_PORTAL),
        ("http://sync.test", httpx.Response(307), LinkFailure, R.CAPTIVE_PORTAL),
        ("https://sync.test", httpx.Response(301, headers={"location": "http://sync.test/v1"}),
         LinkFailure, R.CAPTIVE_PORTAL),
        ("http://sync.test",
         httpx.Response(301, headers={"location": "https://sync.test/v1/batches"}),
         LinkFailure, R.SERVER_ERROR),
        ("http://sync.test", httpx.Response(511, text="log in", headers=HTML),
         LinkFailure, R.CAPTIVE_PORTAL),
        ("http://sync.test", httpx.Response(407, text="proxy"), LinkFailure, R.CAPTIVE_PORTAL),
        ("http://sync.test", httpx.Response(401, text="<h1>who?</h1>", headers=HTML),
         LinkFailure, R.CAPTIVE_PORTAL),
        ("http://sync.test", httpx.Response(426, text="upgrade"), LinkFailure, R.CAPTIVE_PORTAL),
        ("http://sync.test", fieldsync_error(401, "unauthorized"), AuthRejected, R.UNAUTHORISED),
        ("http://sync.test", fieldsync_error(403, "device_revoked"), AuthRejected,
         R.DEVICE_REVOKED),
        ("http://sync.test", fieldsync_error(426, "upgrade_required"), UpgradeRequired,
         R.UPGRADE_REQUIRED),
        ("http://sync.test", fieldsync_error(429, "rate_limited"), ServerBusy, R.RATE_LIMITED),
        ("http://sync.test", httpx.Response(503, text="<h1>down</h1>"), ServerBusy,
         R.SERVER_ERROR),
        ("http://sync.test", fieldsync_error(400, "malformed_batch"), BatchRefused,
         R.SERVER_ERROR),
    ],
)  # fmt: skip
def test_each_answer_maps_to_its_error_and_reason(
    url: str, response: httpx.Response, kind: type[Exception], reason: Reason
) -> None:
    wifi = HttpChannel("wifi", url, "tok", transport=httpx.MockTransport(lambda r: response))
    with wifi, pytest.raises(kind) as caught:
        wifi.send(a_batch())  # type: ignore[arg-type]
    assert type(caught.value) is kind
    assert getattr(caught.value, "reason", None) == reason
    assert classify(caught.value) == reason


# -- TLS options ---------------------------------------------------------------------------


def test_pins_are_checked_when_the_channel_is_made() -> None:
    good = "sha256/" + "A" * 43 + "="
    assert parse_pins([good, good]) == frozenset({good})
    for bad in ["sha1/" + "A" * 43 + "=", "sha256/" + "A" * 42 + "=", "sha256/" + "!" * 43 + "=",
                "sha256/" + "A" * 43 + "=\n", "sha256/" + "A" * 42 + "\ud800=",
                "sha256/" + "A" * 42 + "\uff10=", "x" * 10_000]:  # fmt: skip
        with pytest.raises(ValueError, match="a pin is"):
            parse_pins([bad])
    with pytest.raises(ValueError, match="not one string"):
        parse_pins(good)


def test_tls_options_and_a_transport_exclude_each_other(tmp_path: Path) -> None:
    ca = Authority(tmp_path)
    mock = httpx.MockTransport(lambda r: httpx.Response(500))
    for options in ({"ca_bundle": ca.bundle}, {"pins": ["sha256/" + "A" * 43 + "="]}):
        with pytest.raises(ValueError, match="not both"):
            HttpChannel("wifi", "https://sync.test", "tok", transport=mock, **options)  # type: ignore[arg-type]


def test_a_ca_bundle_that_is_not_one_is_refused_at_once(tmp_path: Path) -> None:
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    for path in (tmp_path / "missing.pem", not_pem, tmp_path, f"{tmp_path}/nul\x00.pem"):
        with pytest.raises(ValueError, match="not a readable PEM file of CAs"):
            client_context(ca_bundle=path)


def test_the_context_always_verifies(tmp_path: Path) -> None:
    for context in (client_context(), client_context(Authority(tmp_path).bundle)):
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
        assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command line")
def test_spki_pin_is_the_openssl_pipeline_in_the_readme(tmp_path: Path) -> None:
    issued = Authority(tmp_path).valid()
    pipeline = (
        f"openssl x509 -in {issued.cert} -pubkey -noout | openssl pkey -pubin -outform der"
        " | openssl dgst -sha256 -binary | openssl enc -base64"
    )
    out = subprocess.run(pipeline, shell=True, check=True, capture_output=True, text=True)
    pem = issued.cert.read_bytes()
    der = ssl.PEM_cert_to_DER_cert(pem.decode())
    assert spki_pin(pem) == spki_pin(der) == "sha256/" + out.stdout.strip()


def test_a_report_gives_a_reason_only_for_a_failed_send() -> None:
    sent = SyncReport(remaining=2, failures=1, last_error=LinkFailure("x", reason=R.TIMEOUT))
    assert sent.reason == R.TIMEOUT and sent.why is not None and "[timeout] x" in sent.why
    disk = SyncReport(remaining=2, last_error=OutboxError("disk I/O error"))
    assert disk.reason is None and disk.why is not None and "[" not in disk.why
    assert SyncReport().reason is None
