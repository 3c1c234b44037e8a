"""protocol.reasons: the contract's codes, exactly, and the server-code mapping."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from protocol.reasons import ATTEMPT_REASONS, VERDICT_REASONS, Reason, reason_of

CONTRACT = {
    "network_unreachable",
    "dns_failure",
    "timeout",
    "tls_certificate_expired",
    "tls_certificate_untrusted",
    "captive_portal",
    "server_error",
    "rate_limited",
    "device_revoked",
    "unauthorised",
    "upgrade_required",
    "storage_low",
    "schema_mismatch",
    "field_too_long",
    "invalid_value",
    "unknown_field",
    "unknown_collection",
}


def test_the_values_are_exactly_the_contracts() -> None:
    assert {r.value for r in Reason} == CONTRACT
    assert set(Reason) == ATTEMPT_REASONS | VERDICT_REASONS
    assert not ATTEMPT_REASONS & VERDICT_REASONS


def test_server_codes_fold_into_reasons() -> None:
    assert reason_of("too_long") is Reason.FIELD_TOO_LONG
    assert reason_of("unknown_field") is Reason.UNKNOWN_FIELD
    assert reason_of("unknown_collection") is Reason.UNKNOWN_COLLECTION
    assert reason_of("server_error") is Reason.SERVER_ERROR
    assert reason_of("unauthorized") is Reason.UNAUTHORISED
    for code in (
        "wrong_type",
        "invalid_choice",
        "invalid_phone",
        "out_of_range",
        "invalid_decimal",
        "invalid_timestamp",
        "invalid_email",
        "invalid_text",
        "required",
        "invalid_record_id",
        "empty_patch",
        "fields_on_delete",
        "clock_ahead",
        "tx_rejected",
        "op_id_reused",
        "a_code_from_a_newer_server",
    ):
        assert reason_of(code) is Reason.INVALID_VALUE, code
    for reason in Reason:
        assert reason_of(reason.value) is reason


@given(st.one_of(st.none(), st.text(), st.integers(), st.binary()))
def test_reason_of_is_total(code: object) -> None:
    assert isinstance(reason_of(code), Reason)  # type: ignore[arg-type]


def test_an_overlong_code_is_not_looked_up() -> None:
    assert reason_of("too_long" + " " * 100) is Reason.INVALID_VALUE
