"""Phone numbers through libphonenumber (the ``phonenumbers`` port): region and output per field.

The length is bounded before anything else looks at the text, and the screen that
finds the number in what a rep typed is one linear pass: no input can make it slow
(the hand-written pattern this replaces was quadratic on long input).

Mainland mobiles written the common ways (``13912345678``, ``139 1234 5678``,
``+86 139-1234-5678``) take a fast path (``_cn_mobile``): one bounded pattern finds
the 11 digits and libphonenumber's own CN mobile pattern, from its metadata, decides;
a number the parse could read differently (a carrier-code prefix) or that is not a
mobile goes the full way, so the answer and every refusal stay libphonenumber's
(tests/protocol/test_phone.py compares both on every six-digit mobile prefix).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

import phonenumbers
from phonenumbers import NumberParseException, PhoneMetadata, PhoneNumberFormat, PhoneNumberType

from .constants import MAX_PHONE_LENGTH
from .errors import EntryInvalid

#: ``national``: mobiles of the field's region only, as the national significant number
#: (11 digits for a mainland-China mobile). ``e164``: any valid number, as E.164.
PhoneOutput = Literal["national", "e164"]
OUTPUTS: tuple[PhoneOutput, ...] = ("national", "e164")

_DIGITS = frozenset("0123456789")
#: What may stand between the first and the last digit of a number as written.
_INSIDE = _DIGITS | frozenset(" \t-.()/")
_MOBILE = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)

#: A mainland mobile as reps and devices write it: an optional +86, then 3-4-4 digits
#: with at most one space or dash between groups (ASCII only; bounded, linear).
_CN_WRITTEN = re.compile(r"(?:\+86[ -]?)?(1[3-9][0-9])[ -]?([0-9]{4})[ -]?([0-9]{4})", re.ASCII)


def _cn_patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """libphonenumber's CN mobile pattern (what ``number_type`` finally tests for an
    11-digit 13-19 number: no other CN type's pattern starts that way), and its prefix
    the parse may strip as a national or carrier prefix."""
    metadata = PhoneMetadata.metadata_for_region("CN")
    mobile = metadata.mobile if metadata is not None else None
    if metadata is None or mobile is None or not mobile.national_number_pattern:
        raise RuntimeError("libphonenumber has no CN mobile metadata")
    prefix = metadata.national_prefix_for_parsing or "0"
    return re.compile(mobile.national_number_pattern), re.compile(prefix)


_CN_MOBILE, _CN_PREFIX = _cn_patterns()


def normalize_phone(
    value: str, field: str | None = None, *, region: str = "CN", output: PhoneOutput = "national"
) -> str:
    """The number in ``value`` in the field's ``output`` form, or EntryInvalid saying why not.

    Accepts country prefixes (+86, 0086, 86), spaces, dashes, dots, parentheses,
    full-width characters, and junk before the first digit or after the last
    ("tel: …", "…。"). ``region`` reads numbers written without a country prefix.
    """
    if output == "national" and region == "CN":
        national = _cn_mobile(value)
        if national is not None:
            return national
        if _is_cn_national(value):
            # Already in its stored form (what every device sends): parsing adds nothing.
            number = phonenumbers.PhoneNumber(country_code=86, national_number=int(value))
            return _national_mobile(number, region, field)
    text = _screen(value, field)
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        raise _invalid(field, f"is not a phone number: {exc}") from exc
    if output == "e164":
        if not phonenumbers.is_valid_number(number):
            raise _invalid(field, "is not a valid phone number")
        return phonenumbers.format_number(number, PhoneNumberFormat.E164)
    return _national_mobile(number, region, field)


def normalize_cn_mobile(value: str, field: str | None = None) -> str:
    """The 11-digit mainland-China mobile in ``value`` (see normalize_phone)."""
    return normalize_phone(value, field, region="CN", output="national")


def _screen(value: str, field: str | None) -> str:
    """The number as written, without the junk around it; refuse stray characters."""
    if len(value) > MAX_PHONE_LENGTH:
        raise _invalid(field, f"is {len(value)} characters; at most {MAX_PHONE_LENGTH}")
    text = unicodedata.normalize("NFKC", value)
    positions = [i for i, ch in enumerate(text) if ch in _DIGITS]
    if not positions:
        raise _invalid(field, "has no digits")
    first, last = positions[0], positions[-1]
    body = text[first : last + 1]
    stray = next((ch for ch in body if ch not in _INSIDE), None)
    if stray is not None:
        raise _invalid(field, f"has stray characters: {text[first:].strip()[:20]!a}")
    lead = len(text[:first]) - len(text[:first].rstrip(" \t(+"))
    pluses = text[first - lead : first].count("+")
    if pluses > 1:
        raise _invalid(field, "has more than one '+' before the country code (write +86 …)")
    return ("+" if pluses else "") + body


def _national_mobile(number: phonenumbers.PhoneNumber, region: str, field: str | None) -> str:
    code = phonenumbers.country_code_for_region(region)
    if number.country_code != code:
        raise _invalid(field, f"is not a +{code} ({region}) number")
    national = phonenumbers.national_significant_number(number)
    if region == "CN":
        if len(national) != 11:
            raise _invalid(field, f"has {len(national)} digits; a mainland mobile has 11")
        if national[0] != "1" or national[1] not in "3456789":
            raise _invalid(field, "a mainland mobile starts with 13-19")
    kind = phonenumbers.number_type(number)  # UNKNOWN is what is_valid_number refuses
    if kind == PhoneNumberType.UNKNOWN:
        raise _invalid(field, f"is not an allocated {region} number")
    if kind not in _MOBILE:
        raise _invalid(field, f"is not a {region} mobile number")
    return national


def _cn_mobile(value: str) -> str | None:
    """The 11 digits of an allocated CN mobile written a common way; None: ask libphonenumber.

    What the full path gives for these writings: ``_screen`` keeps them as they are,
    the parse reads +86 (or CN's default) and the 11 digits as the national number
    (nothing to strip unless ``_CN_PREFIX`` matches), and ``number_type`` is MOBILE
    exactly when the mobile pattern matches.
    """
    if len(value) > 20:
        return None
    written = _CN_WRITTEN.fullmatch(value)
    if written is None:
        return None
    national = "".join(written.groups())
    if _CN_PREFIX.match(national) or not _CN_MOBILE.fullmatch(national):
        return None
    return national


def _is_cn_national(value: str) -> bool:
    """True for 11 ASCII digits starting with 1: the form a CN mobile is stored in.

    No trunk prefix (0) nor country code (86) can start it, so libphonenumber's parse
    would read it as exactly this national number, unless a carrier-code prefix
    (``_CN_PREFIX``: 179xx, which the parse then treats otherwise) starts it.
    """
    return (
        len(value) == 11
        and value[0] == "1"
        and value.isascii()
        and value.isdigit()
        and not _CN_PREFIX.match(value)
    )


def _invalid(field: str | None, message: str) -> EntryInvalid:
    return EntryInvalid("invalid_phone", field, message)
