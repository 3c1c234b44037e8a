"""Field types of the collection registry; each normalises a value or says why not."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal as _Dec
from decimal import InvalidOperation
from typing import Any, Protocol

from .constants import MAX_NAME_LENGTH, MAX_STRING_LENGTH
from .errors import EntryInvalid
from .phone import normalize_cn_mobile

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


class FieldType(Protocol):
    """Normalise one value of a field or raise EntryInvalid(code, field, message)."""

    def normalize(self, value: Any, field: str) -> Any:
        """Return the canonical form of ``value``."""
        ...


def _wrong_type(field: str, expected: str, value: Any) -> EntryInvalid:
    return EntryInvalid("wrong_type", field, f"expected {expected}, got {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class String:
    """Text up to ``max_length`` characters (surrounding spaces kept)."""

    max_length: int = 255

    def __post_init__(self) -> None:
        if not 0 < self.max_length <= MAX_STRING_LENGTH:
            raise ValueError(f"max_length must be 1..{MAX_STRING_LENGTH}")

    def normalize(self, value: Any, field: str) -> str:
        """Check type and length."""
        if not isinstance(value, str):
            raise _wrong_type(field, "string", value)
        if len(value) > self.max_length:
            raise EntryInvalid(
                "too_long", field, f"is {len(value)} characters; at most {self.max_length}"
            )
        return value


@dataclass(frozen=True, slots=True)
class Int:
    """A whole number within optional bounds."""

    min: int | None = None
    max: int | None = None

    def normalize(self, value: Any, field: str) -> int:
        """Check type and range (a bool is not an int here)."""
        if isinstance(value, bool) or not isinstance(value, int):
            raise _wrong_type(field, "integer", value)
        if (self.min is not None and value < self.min) or (
            self.max is not None and value > self.max
        ):
            raise EntryInvalid("out_of_range", field, f"{value} not in [{self.min}, {self.max}]")
        return value


@dataclass(frozen=True, slots=True)
class Decimal:
    """An exact decimal, sent as a string, with at most ``places`` decimal places."""

    places: int = 2
    max_digits: int = 18

    def normalize(self, value: Any, field: str) -> str:
        """Return the canonical string form, e.g. "12.50"."""
        if isinstance(value, bool) or not isinstance(value, str | int | _Dec):
            raise _wrong_type(field, "decimal string (floats lose cents)", value)
        try:
            number = _Dec(str(value).strip())
        except InvalidOperation as exc:
            raise EntryInvalid("invalid_decimal", field, f"{value!r} is not a number") from exc
        if not number.is_finite():
            raise EntryInvalid("invalid_decimal", field, "must be finite")
        exponent = number.as_tuple().exponent
        if isinstance(exponent, int) and -exponent > self.places:
            raise EntryInvalid("invalid_decimal", field, f"more than {self.places} decimal places")
        quantized = number.quantize(_Dec(1).scaleb(-self.places))
        if len(quantized.as_tuple().digits) > self.max_digits:
            raise EntryInvalid("invalid_decimal", field, f"more than {self.max_digits} digits")
        return str(quantized)


@dataclass(frozen=True, slots=True)
class Bool:
    """True or false, nothing truthy."""

    def normalize(self, value: Any, field: str) -> bool:
        """Check type."""
        if not isinstance(value, bool):
            raise _wrong_type(field, "boolean", value)
        return value


@dataclass(frozen=True, slots=True)
class Timestamp:
    """An ISO 8601 instant with a UTC offset, stored as UTC with milliseconds."""

    def normalize(self, value: Any, field: str) -> str:
        """Return "YYYY-MM-DDTHH:MM:SS.mmmZ"; a time without offset is ambiguous."""
        if isinstance(value, datetime):
            moment = value
        elif isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value.strip())
            except ValueError as exc:
                raise EntryInvalid(
                    "invalid_timestamp", field, f"{value!r} is not ISO 8601"
                ) from exc
        else:
            raise _wrong_type(field, "ISO 8601 string", value)
        if moment.tzinfo is None:
            raise EntryInvalid("invalid_timestamp", field, "has no UTC offset")
        return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Enum:
    """One of a fixed set of strings."""

    choices: tuple[str, ...]

    def normalize(self, value: Any, field: str) -> str:
        """Check membership."""
        if value not in self.choices:
            raise EntryInvalid("invalid_choice", field, f"{value!r} not one of {self.choices}")
        return str(value)


@dataclass(frozen=True, slots=True)
class Phone:
    """A mainland-China mobile number, normalised to 11 digits."""

    def normalize(self, value: Any, field: str) -> str:
        """See protocol.phone.normalize_cn_mobile."""
        if not isinstance(value, str):
            raise _wrong_type(field, "string", value)
        return normalize_cn_mobile(value, field)


@dataclass(frozen=True, slots=True)
class Email:
    """An e-mail address; the domain is lower-cased."""

    def normalize(self, value: Any, field: str) -> str:
        """Check the shape local@domain.tld."""
        if not isinstance(value, str):
            raise _wrong_type(field, "string", value)
        text = value.strip()
        if len(text) > 254 or not _EMAIL.fullmatch(text):
            raise EntryInvalid("invalid_email", field, f"{value!r} is not an e-mail address")
        local, _, domain = text.rpartition("@")
        return f"{local}@{domain.lower()}"


@dataclass(frozen=True, slots=True)
class Reference:
    """The record id of a record in another collection."""

    collection: str

    def normalize(self, value: Any, field: str) -> str:
        """Check it is a plausible record id (existence is not checked offline)."""
        if not isinstance(value, str):
            raise _wrong_type(field, "record id string", value)
        if not 0 < len(value) <= MAX_NAME_LENGTH:
            raise EntryInvalid("invalid_reference", field, "record id must be 1-128 characters")
        return value
