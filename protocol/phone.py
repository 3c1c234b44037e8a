"""Normalise how a mainland-China mobile number gets written to its 11-digit form."""

from __future__ import annotations

import re
import unicodedata

from .errors import EntryInvalid

_BODY = re.compile(r"[+(]*\d[\d\s\-.()/]*")
_SEPARATORS = re.compile(r"[\s\-.()/]")
_MOBILE = re.compile(r"1[3-9]\d{9}")


def normalize_cn_mobile(value: str, field: str | None = None) -> str:
    """Return the 11-digit mobile in ``value`` or raise EntryInvalid saying why not.

    Accepts +86 / 0086 / 86 prefixes, spaces, dashes, dots, parentheses, full-width
    characters, and junk before the first digit or after the last ("tel: …", "…。").
    """
    text = unicodedata.normalize("NFKC", value).strip()
    match = _BODY.search(text)
    if match is None:
        raise EntryInvalid("invalid_phone", field, "has no digits")
    body = match.group().rstrip(" -.(/")
    rest = text[match.end() :]
    if any(ch.isdigit() for ch in rest):
        raise EntryInvalid("invalid_phone", field, f"has stray characters: {rest.strip()!r}")
    digits = _SEPARATORS.sub("", body)
    digits = _strip_country(digits, field)
    if len(digits) != 11:
        raise EntryInvalid(
            "invalid_phone", field, f"has {len(digits)} digits; a mainland mobile has 11"
        )
    if not _MOBILE.fullmatch(digits):
        raise EntryInvalid("invalid_phone", field, "a mainland mobile starts with 13-19")
    return digits


def _strip_country(digits: str, field: str | None) -> str:
    if digits.startswith("+"):
        if not digits.startswith("+86"):
            raise EntryInvalid("invalid_phone", field, "is not a +86 (mainland China) number")
        return digits[3:]
    if digits.startswith("0086"):
        return digits[4:]
    if digits.startswith("86") and len(digits) == 13:
        return digits[2:]
    return digits
