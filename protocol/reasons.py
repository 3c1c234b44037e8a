"""The failure taxonomy: one machine code per reason an attempt or an entry can fail.

Attempt failures are the device's own view of a sync attempt; entry verdicts come from
the server's per-entry codes. The values are the contract of issue 9 (the wire, the
journal, the data box and the catalogues all use them as they are). Pure: no I/O.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why an attempt or an entry failed; the value is the machine code."""

    # -- attempt failures (device side) --
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
    # -- entry verdicts --
    SCHEMA_MISMATCH = "schema_mismatch"
    FIELD_TOO_LONG = "field_too_long"
    INVALID_VALUE = "invalid_value"
    UNKNOWN_FIELD = "unknown_field"
    UNKNOWN_COLLECTION = "unknown_collection"
