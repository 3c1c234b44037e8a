"""Phone numbers through libphonenumber (the ``phonenumbers`` port): region and output per field.

The length is bounded before anything else looks at the text, and the screen that
finds the number in what a rep typed is one linear pass: no input can make it slow
(the hand-written pattern this replaces was quadratic on long input).
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
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

#: A mainland mobile as reps type it: "+86 139 1234 5678", "139-1234-5678", "13912345678"
#: (ASCII; an optional "+86"; at most one space or dash between the 3-4-4 groups). It
#: leaves out 11, 12 and 179: libphonenumber reads "1[12]xx00…" and "179xx00…" as an
#: international dialling prefix, so those go through its parse.
_TYPED_CN = re.compile(r"(?:\+86[ -]?)?(1(?:[3-689][0-9]|7[0-8]))[ -]?([0-9]{4})[ -]?([0-9]{4})")
#: What libphonenumber's CN metadata said when _TYPED_CN was written: its international
#: and national prefixes can strip nothing from an 11-digit number that _TYPED_CN takes
#: (what would be left has 6 digits, too few to stand). Other metadata: no fast path.
_CN_PREFIXES = ("00|1(?:[12]\\d|79)\\d\\d00", "(1(?:[12]\\d|79)\\d\\d)|0", "0")
#: libphonenumber's number types in the order its ``number_type`` tries them.
_KINDS = (
    ("premium_rate", PhoneNumberType.PREMIUM_RATE),
    ("toll_free", PhoneNumberType.TOLL_FREE),
    ("shared_cost", PhoneNumberType.SHARED_COST),
    ("voip", PhoneNumberType.VOIP),
    ("personal_number", PhoneNumberType.PERSONAL_NUMBER),
    ("pager", PhoneNumberType.PAGER),
    ("uan", PhoneNumberType.UAN),
    ("voicemail", PhoneNumberType.VOICEMAIL),
)


def normalize_phone(
    value: str, field: str | None = None, *, region: str = "CN", output: PhoneOutput = "national"
) -> str:
    """The number in ``value`` in the field's ``output`` form, or EntryInvalid saying why not.

    Accepts country prefixes (+86, 0086, 86), spaces, dashes, dots, parentheses,
    full-width characters, and junk before the first digit or after the last
    ("tel: …", "…。"). ``region`` reads numbers written without a country prefix.
    """
    if output == "national" and region == "CN":
        national = _typed_cn_mobile(value)
        if national is not None:
            # The stored form (what devices send) or a typed one: parsing adds nothing.
            return _mobile_of_kind(national, _cn_kind(national), region, field)
    return _parsed(value, field, region, output)


def _parsed(value: str, field: str | None, region: str, output: PhoneOutput) -> str:
    """normalize_phone through libphonenumber's parse: every input, no fast path."""
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
    return _mobile_of_kind(national, phonenumbers.number_type(number), region, field)


def _mobile_of_kind(national: str, kind: int, region: str, field: str | None) -> str:
    """``national`` if libphonenumber's ``kind`` of it is a mobile; else say why not."""
    if kind == PhoneNumberType.UNKNOWN:  # what is_valid_number refuses
        raise _invalid(field, f"is not an allocated {region} number")
    if kind not in _MOBILE:
        raise _invalid(field, f"is not a {region} mobile number")
    return national


def _typed_cn_mobile(value: str) -> str | None:
    """The 11 digits of a mainland mobile written as _TYPED_CN takes it, else None.

    libphonenumber's parse reads such text as exactly this national number of +86
    (tests/protocol/test_phone.py compares the two on generated and corpus inputs).
    """
    match = _TYPED_CN.fullmatch(value) if len(value) <= 20 and _fast_cn() else None
    return None if match is None else "".join(match.groups())


@cache
def _fast_cn() -> bool:
    """Whether the CN metadata still has the prefixes _TYPED_CN was reasoned against."""
    meta = PhoneMetadata.metadata_for_region("CN")
    if meta is None or phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(86) != ("CN",):
        return False
    found = (meta.international_prefix, meta.national_prefix_for_parsing, meta.national_prefix)
    return found == _CN_PREFIXES and not meta.national_prefix_transform_rule


def _cn_kind(national: str) -> int:
    """``phonenumbers.number_type`` of +86 ``national``, on patterns compiled once."""
    general, kinds, fixed, mobile, same = _cn_patterns(len(national))
    if not _matches(national, general):
        return PhoneNumberType.UNKNOWN
    for pattern, kind in kinds:
        if pattern.fullmatch(national) is not None:
            return kind
    if _matches(national, fixed):
        if same or _matches(national, mobile):
            return PhoneNumberType.FIXED_LINE_OR_MOBILE
        return PhoneNumberType.FIXED_LINE
    if not same and _matches(national, mobile):
        return PhoneNumberType.MOBILE
    return PhoneNumberType.UNKNOWN


#: A number description's compiled pattern; None where absent or the length is not one
#: of its possible lengths (libphonenumber's _is_number_matching_desc checks that first).
_Pattern = re.Pattern[str] | None


@cache
def _cn_patterns(
    length: int,
) -> tuple[_Pattern, tuple[tuple[re.Pattern[str], int], ...], _Pattern, _Pattern, bool]:
    """The CN metadata's number descriptions for numbers of ``length`` digits, compiled."""
    meta = PhoneMetadata.metadata_for_region("CN")
    if meta is None:  # pragma: no cover - _fast_cn checked it
        raise RuntimeError("libphonenumber has no CN metadata")
    kinds = ((_pattern(getattr(meta, name), length), kind) for name, kind in _KINDS)
    return (
        _pattern(meta.general_desc, length),
        tuple((pattern, kind) for pattern, kind in kinds if pattern is not None),
        _pattern(meta.fixed_line, length),
        _pattern(meta.mobile, length),
        bool(meta.same_mobile_and_fixed_line_pattern),
    )


def _pattern(desc: phonenumbers.PhoneNumberDesc | None, length: int) -> _Pattern:
    if desc is None or not desc.national_number_pattern:
        return None
    if desc.possible_length and length not in desc.possible_length:
        return None
    return re.compile(desc.national_number_pattern)


def _matches(national: str, pattern: _Pattern) -> bool:
    return pattern is not None and pattern.fullmatch(national) is not None


def _invalid(field: str | None, message: str) -> EntryInvalid:
    return EntryInvalid("invalid_phone", field, message)
