"""Phone numbers through libphonenumber (the ``phonenumbers`` port): region and output per field.

The length is bounded before anything else looks at the text, and the screen that
finds the number in what a rep typed is one linear pass: no input can make it slow
(the hand-written pattern this replaces was quadratic on long input).
"""

from __future__ import annotations

import unicodedata
from typing import Literal

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

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


def normalize_phone(
    value: str, field: str | None = None, *, region: str = "CN", output: PhoneOutput = "national"
) -> str:
    """The number in ``value`` in the field's ``output`` form, or EntryInvalid saying why not.

    Accepts country prefixes (+86, 0086, 86), spaces, dashes, dots, parentheses,
    full-width characters, and junk before the first digit or after the last
    ("tel: …", "…。"). ``region`` reads numbers written without a country prefix.
    """
    if output == "national" and region == "CN" and _is_cn_national(value):
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


def _is_cn_national(value: str) -> bool:
    """True for 11 ASCII digits starting with 1: the form a CN mobile is stored in.

    No trunk prefix (0) nor country code (86) can start it, so libphonenumber's parse
    would read it as exactly this national number.
    """
    return len(value) == 11 and value[0] == "1" and value.isascii() and value.isdigit()


def _invalid(field: str | None, message: str) -> EntryInvalid:
    return EntryInvalid("invalid_phone", field, message)
