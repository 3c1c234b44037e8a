"""Field types of the collection registry; each normalises a value or says why not."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Context
from decimal import Decimal as _Dec
from typing import Any, Protocol

import phonenumbers

from ._text import is_name, safe_text
from .constants import (
    MAX_DECIMAL_DIGITS,
    MAX_INT,
    MAX_NAME_LENGTH,
    MAX_STRING_LENGTH,
    MAX_TIMESTAMP_LENGTH,
    MAX_TIMESTAMP_YEAR,
    MIN_INT,
    MIN_TIMESTAMP_YEAR,
)
from .errors import EntryInvalid
from .phone import OUTPUTS, PhoneOutput, normalize_phone

#: Every length is checked before these run; all are ASCII-only where digits matter.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_TIMESTAMP_CHARS = re.compile(r"[0-9TtZz:.,+\- ]+")
_MAX_EMAIL_LENGTH = 254


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
        if not safe_text(value):
            raise EntryInvalid("invalid_text", field, "holds a NUL or a lone surrogate")
        return value


@dataclass(frozen=True, slots=True)
class Int:
    """A whole number within bounds; unset bounds are the signed 64-bit range."""

    min: int | None = None
    max: int | None = None

    def __post_init__(self) -> None:
        if not MIN_INT <= self.low <= self.high <= MAX_INT:
            raise ValueError(f"bounds must satisfy {MIN_INT} <= min <= max <= {MAX_INT}")

    @property
    def low(self) -> int:
        """The lowest value accepted."""
        return MIN_INT if self.min is None else self.min

    @property
    def high(self) -> int:
        """The highest value accepted."""
        return MAX_INT if self.max is None else self.max

    def normalize(self, value: Any, field: str) -> int:
        """Check type and range (a bool is not an int here)."""
        if isinstance(value, bool) or not isinstance(value, int):
            raise _wrong_type(field, "integer", value)
        if not self.low <= value <= self.high:
            # No str(value): a huge int would be slow to print; say only where it falls.
            side = "below" if value < self.low else "above"
            raise EntryInvalid("out_of_range", field, f"{side} the range [{self.low}, {self.high}]")
        return value


@dataclass(frozen=True, slots=True)
class Decimal:
    """An exact decimal, sent as a string, with at most ``places`` decimal places."""

    places: int = 2
    max_digits: int = 18

    def __post_init__(self) -> None:
        if not 0 <= self.places <= self.max_digits <= MAX_DECIMAL_DIGITS or self.max_digits < 1:
            raise ValueError(f"need 0 <= places <= max_digits <= {MAX_DECIMAL_DIGITS}")

    def normalize(self, value: Any, field: str) -> str:
        """Return the canonical string form, e.g. "12.50" (plain notation, no exponent)."""
        number = self._number(value, field)
        if not number.is_finite():
            raise EntryInvalid("invalid_decimal", field, "must be finite")
        exponent = number.as_tuple().exponent
        if isinstance(exponent, int) and -exponent > self.places:
            raise EntryInvalid("invalid_decimal", field, f"more than {self.places} decimal places")
        if number and number.adjusted() + 1 + self.places > self.max_digits:
            raise EntryInvalid("invalid_decimal", field, f"more than {self.max_digits} digits")
        context = Context(prec=MAX_DECIMAL_DIGITS + 2)
        return str(number.quantize(_Dec(1).scaleb(-self.places), context=context))

    def _number(self, value: Any, field: str) -> _Dec:
        """The value as a Decimal, its size bounded before any conversion."""
        if isinstance(value, bool) or not isinstance(value, str | int | _Dec):
            raise _wrong_type(field, "decimal string (floats lose cents)", value)
        if isinstance(value, _Dec):
            return value
        if isinstance(value, int):
            if abs(value) >= 10**self.max_digits:
                raise EntryInvalid("invalid_decimal", field, f"more than {self.max_digits} digits")
            return _Dec(value)
        text = value.strip() if len(value) <= self.max_digits + 16 else ""
        if not _DECIMAL.fullmatch(text):
            raise EntryInvalid(
                "invalid_decimal", field, "is not a plain decimal number such as 12.50"
            )
        return _Dec(text)


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
    """An ISO 8601 instant with a UTC offset, stored as UTC with milliseconds.

    In range: years MIN_TIMESTAMP_YEAR..MAX_TIMESTAMP_YEAR (UTC), ASCII digits only.
    """

    def normalize(self, value: Any, field: str) -> str:
        """Return "YYYY-MM-DDTHH:MM:SS.mmmZ"; a time without offset is ambiguous."""
        if isinstance(value, datetime):
            moment = value
        elif isinstance(value, str):
            moment = _parse_timestamp(value, field)
        else:
            raise _wrong_type(field, "ISO 8601 string", value)
        if moment.tzinfo is None:
            raise EntryInvalid("invalid_timestamp", field, "has no UTC offset")
        try:
            utc = moment.astimezone(UTC)
        except OverflowError:
            utc = None
        if utc is None or not MIN_TIMESTAMP_YEAR <= utc.year <= MAX_TIMESTAMP_YEAR:
            raise EntryInvalid(
                "out_of_range",
                field,
                f"must fall in the years {MIN_TIMESTAMP_YEAR}-{MAX_TIMESTAMP_YEAR} (UTC)",
            )
        return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Enum:
    """One of a fixed set of strings."""

    choices: tuple[str, ...]

    def normalize(self, value: Any, field: str) -> str:
        """Check membership."""
        if type(value) is not str or value not in self.choices:
            shown = ascii(value[:40]) if isinstance(value, str) else type(value).__name__
            raise EntryInvalid("invalid_choice", field, f"{shown} not one of {self.choices}")
        return value


@dataclass(frozen=True, slots=True)
class Phone:
    """A phone number read in ``region``, written as ``output`` (see protocol.phone).

    The default (CN, national) takes mainland mobiles and writes their 11 digits.
    """

    region: str = "CN"
    output: PhoneOutput = "national"

    def __post_init__(self) -> None:
        if self.region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"region {self.region!r} is not a libphonenumber region code")
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}")

    def normalize(self, value: Any, field: str) -> str:
        """See protocol.phone.normalize_phone."""
        if not isinstance(value, str):
            raise _wrong_type(field, "string", value)
        return normalize_phone(value, field, region=self.region, output=self.output)


@dataclass(frozen=True, slots=True)
class Email:
    """An e-mail address; the domain is lower-cased."""

    def normalize(self, value: Any, field: str) -> str:
        """Check the shape local@domain.tld."""
        if not isinstance(value, str):
            raise _wrong_type(field, "string", value)
        text = value.strip() if len(value) <= 2 * _MAX_EMAIL_LENGTH else ""
        if not is_name(text, _MAX_EMAIL_LENGTH) or not _EMAIL.fullmatch(text):
            raise EntryInvalid("invalid_email", field, f"{value[:40]!a} is not an e-mail address")
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
        if not is_name(value, MAX_NAME_LENGTH):
            raise EntryInvalid(
                "invalid_reference",
                field,
                f"record id must be 1-{MAX_NAME_LENGTH} characters, no control characters",
            )
        return value


def _parse_timestamp(value: str, field: str) -> datetime:
    """Parse ISO 8601 text, its length and characters (ASCII digits) checked first."""
    text = value.strip() if len(value) <= MAX_TIMESTAMP_LENGTH else ""
    if _TIMESTAMP_CHARS.fullmatch(text):
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass
    raise EntryInvalid("invalid_timestamp", field, f"{value[:40]!a} is not ISO 8601")
