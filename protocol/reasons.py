"""The failure taxonomy: one machine code for every reason an attempt or an entry fails.

Attempt failures (a batch did not get through; every entry stays) and entry verdicts
(the server refused one entry; it is parked) share one StrEnum, so the data box, the
journal and the server's fleet view speak the same codes. The server keeps its own,
finer per-field codes on the wire (``too_long``, ``invalid_phone``...);
``reason_of(code)`` folds one into its reason. Pure: no I/O, no locale.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ATTEMPT_REASONS", "VERDICT_REASONS", "Reason", "reason_of"]


class Reason(StrEnum):
    """Why an attempt or an entry failed; the values are the wire's and the journal's."""

    NETWORK_UNREACHABLE = "network_unreachable"
    DNS_FAILURE = "dns_failure"
    TIMEOUT = "timeout"
    TLS_CERTIFICATE_EXPIRED = "tls_certificate_expired"
    TLS_CERTIFICATE_UNTRUSTED = "tls_certificate_untrusted"
    CAPTIVE_PORTAL = "captive_portal"
    SERVER_ERROR = "server_error"
    RATE_LIMITED = "rate_limited"
    DEVICE_REVOKED = "device_revoked"
    UNAUTHORISED = "unauthorised"
    UPGRADE_REQUIRED = "upgrade_required"
    STORAGE_LOW = "storage_low"
    SCHEMA_MISMATCH = "schema_mismatch"
    FIELD_TOO_LONG = "field_too_long"
    INVALID_VALUE = "invalid_value"
    UNKNOWN_FIELD = "unknown_field"
    UNKNOWN_COLLECTION = "unknown_collection"


#: Reasons an attempt (one batch on one channel) fails; nothing is parked for them
#: except ``server_error``, the client's verdict on a transaction the server keeps
#: failing on (client_sync/_isolate.py).
ATTEMPT_REASONS: frozenset[Reason] = frozenset(
    {
        Reason.NETWORK_UNREACHABLE,
        Reason.DNS_FAILURE,
        Reason.TIMEOUT,
        Reason.TLS_CERTIFICATE_EXPIRED,
        Reason.TLS_CERTIFICATE_UNTRUSTED,
        Reason.CAPTIVE_PORTAL,
        Reason.SERVER_ERROR,
        Reason.RATE_LIMITED,
        Reason.DEVICE_REVOKED,
        Reason.UNAUTHORISED,
        Reason.UPGRADE_REQUIRED,
        Reason.STORAGE_LOW,
    }
)

#: Reasons the server gives one entry (a parked entry carries one of these, or
#: ``server_error``).
VERDICT_REASONS: frozenset[Reason] = frozenset(Reason) - ATTEMPT_REASONS

#: Server verdict codes that are not ``invalid_value``. Every other code (wrong_type,
#: invalid_choice, invalid_phone, out_of_range, invalid_decimal, invalid_timestamp,
#: invalid_email, invalid_text, required, invalid_record_id, empty_patch,
#: fields_on_delete, clock_ahead, unknown_kind, op_id_reused, tx_rejected, and any
#: code a newer server adds) is an invalid value, shown with its field.
_SPECIFIC: dict[str, Reason] = {
    "too_long": Reason.FIELD_TOO_LONG,
    "unknown_field": Reason.UNKNOWN_FIELD,
    "unknown_collection": Reason.UNKNOWN_COLLECTION,
    "schema_mismatch": Reason.SCHEMA_MISMATCH,
    "server_error": Reason.SERVER_ERROR,
    # Whole-batch refusals the server answers with an error body (docs/protocol.md).
    "upgrade_required": Reason.UPGRADE_REQUIRED,
    "device_revoked": Reason.DEVICE_REVOKED,
    "unauthorized": Reason.UNAUTHORISED,
    "unauthorised": Reason.UNAUTHORISED,
    "wrong_device": Reason.UNAUTHORISED,
    "rate_limited": Reason.RATE_LIMITED,
    "storage_low": Reason.STORAGE_LOW,
}

#: Longest server code looked up; a longer string is not a code (hostile input).
MAX_CODE_LENGTH = 64


def reason_of(code: str | None) -> Reason:
    """The reason a server verdict code (or a reason's own value) belongs to.

    Total: an unknown, empty or overlong code is ``invalid_value``, never an error,
    so one strange verdict from a newer server never stops the data box.
    """
    if not isinstance(code, str) or len(code) > MAX_CODE_LENGTH:
        return Reason.INVALID_VALUE
    found = _SPECIFIC.get(code)
    if found is not None:
        return found
    try:
        return Reason(code)
    except ValueError:
        return Reason.INVALID_VALUE
