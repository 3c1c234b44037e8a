"""Collection validation: types, limits, kinds, schema versions."""

from __future__ import annotations

from decimal import Decimal

import pytest

from protocol import Collection, EntryInvalid, FieldSpec, UnsupportedVersion, crm_registry
from protocol.fieldtypes import Email, Int, String, Timestamp

REG = crm_registry()


def test_upsert_normalises_and_fills_absent_fields_with_null() -> None:
    out = REG.validate("customers", "upsert", {"name": "Li Wei", "phone": "+86 139 1234 5678"})
    assert out == {
        "name": "Li Wei",
        "phone": "13912345678",
        "email": None,
        "address": None,
        "notes": None,
    }


def test_patch_touches_only_given_fields() -> None:
    assert REG.validate("customers", "patch", {"notes": "call back"}) == {"notes": "call back"}


@pytest.mark.parametrize(
    ("collection", "kind", "fields", "code", "field"),
    [
        ("customers", "upsert", {}, "required", "name"),
        ("customers", "upsert", {"name": "x" * 101}, "too_long", "name"),
        ("customers", "upsert", {"name": "a", "age": 3}, "unknown_field", "age"),
        ("customers", "upsert", {"name": 5}, "wrong_type", "name"),
        ("customers", "upsert", {"name": "a", "email": "nope"}, "invalid_email", "email"),
        ("customers", "patch", {}, "empty_patch", None),
        ("customers", "patch", {"name": None}, "required", "name"),
        ("customers", "delete", {"name": "a"}, "fields_on_delete", None),
        ("leads", "upsert", {"name": "a", "score": 101}, "out_of_range", "score"),
        ("leads", "upsert", {"name": "a", "score": True}, "wrong_type", "score"),
        ("leads", "upsert", {"name": "a", "source": "tv"}, "invalid_choice", "source"),
        (
            "followups",
            "upsert",
            {"customer_id": "c", "due_at": "2026-01-01T10:00"},
            "invalid_timestamp",
            "due_at",
        ),
        (
            "opportunities",
            "upsert",
            {"customer_id": "c", "title": "t", "amount": 1.5},
            "wrong_type",
            "amount",
        ),
        (
            "opportunities",
            "upsert",
            {"customer_id": "c", "title": "t", "amount": "1.234"},
            "invalid_decimal",
            "amount",
        ),
        ("nope", "upsert", {}, "unknown_collection", None),
    ],
)
def test_invalid_fields_are_refused_with_code_and_field(
    collection: str, kind: str, fields: dict[str, object], code: str, field: str | None
) -> None:
    with pytest.raises(EntryInvalid) as info:
        REG.validate(collection, kind, fields)
    assert (info.value.code, info.value.field) == (code, field)


def test_values_are_normalised() -> None:
    out = REG.validate(
        "opportunities",
        "upsert",
        {
            "customer_id": "c1",
            "title": "t",
            "amount": Decimal("12.5"),
            "close_date": "2026-03-01T08:00:00+08:00",
        },
    )
    assert out["amount"] == "12.50"
    assert out["close_date"] == "2026-03-01T00:00:00.000Z"
    assert Email().normalize(" A@Example.COM ", "e") == "A@example.com"


def test_schema_versions() -> None:
    reg = crm_registry()
    reg.register(Collection("notes", {"text": FieldSpec(String(10))}, 3, frozenset({2})))
    reg.check_version("notes", 3)
    reg.check_version("notes", 2)
    with pytest.raises(UnsupportedVersion, match="version 4"):
        reg.check_version("notes", 4)


def test_field_type_bounds() -> None:
    with pytest.raises(ValueError):
        String(0)
    assert Int(0, 5).normalize(5, "n") == 5
    assert Timestamp().normalize("2026-01-01T00:00:00Z", "t") == "2026-01-01T00:00:00.000Z"
