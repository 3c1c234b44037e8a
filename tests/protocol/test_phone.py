"""Phone numbers: every common way of writing one, clear refusals, bounded work."""

from __future__ import annotations

import random

import phonenumbers
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from benchmarks._common import SEED, customer_fields
from protocol import EntryInvalid, FieldSpec, crm_registry, normalize_cn_mobile
from protocol.constants import MAX_PHONE_LENGTH
from protocol.fieldtypes import Phone
from protocol.phone import _cn_kind, _fast_cn, _parsed, _typed_cn_mobile, normalize_phone

#: Mobile prefixes libphonenumber knows as allocated (the rule is its metadata now).
MOBILE_PREFIXES = [f"13{d}" for d in range(10)] + ["150", "151", "152", "153", "155"]
MOBILE_PREFIXES += ["156", "157", "158", "159", "166", "176", "177", "198", "199"]

NUMBER = "13800138000"


@pytest.mark.parametrize(
    "written",
    [
        "13800138000",
        "+86 138 0013 8000",
        "+86-138-0013-8000",
        "0086 13800138000",
        "8613800138000",
        "86 138 0013 8000",
        "(+86) 138.0013.8000",
        "138-0013-8000",
        "138.0013.8000",
        "(138) 0013 8000",
        "１３８００１３８０００",
        "＋８６ １３８ ００１３ ８０００",
        "  tel: 13800138000 ",
        "手机：138 0013 8000。",
        "Mobile: +86 138-0013-8000;",
        "\t13800138000\n",
    ],
)
def test_common_writings_normalise(written: str) -> None:
    assert normalize_cn_mobile(written) == NUMBER


@pytest.mark.parametrize(
    ("written", "reason"),
    [
        ("", "no digits"),
        ("call me", "no digits"),
        ("1380013800", "10 digits"),
        ("138001380001", "12 digits"),
        ("12800138000", "13-19"),
        ("23800138000", "13-19"),
        ("+1 415 555 1234", "+86"),
        ("138abc00138000", "stray"),
        ("13800138000 ext 12", "stray"),
        ("138+00138000", "stray"),
        ("+86+13800138000", "stray"),
        ("++8613800138000", "+86"),
        ("14012345678", "not an allocated"),
        ("010 1234 5678", "has 10 digits"),
        ("1" * (MAX_PHONE_LENGTH + 1), f"at most {MAX_PHONE_LENGTH}"),
    ],
)
def test_refusals_say_why(written: str, reason: str) -> None:
    with pytest.raises(EntryInvalid) as info:
        normalize_cn_mobile(written, "phone")
    assert info.value.code == "invalid_phone"
    assert info.value.field == "phone"
    assert reason in info.value.message


@given(
    st.sampled_from(MOBILE_PREFIXES),
    st.text("0123456789", min_size=8, max_size=8),
    st.sampled_from(["", "+86", "0086", "86", "+86 ", "(+86)"]),
    st.sampled_from([" ", "-", ".", ""]),
)
def test_separators_and_prefixes_never_change_the_number(
    head: str, rest: str, prefix: str, sep: str
) -> None:
    number = head + rest
    written = prefix + sep.join([number[:3], number[3:7], number[7:]])
    assert normalize_cn_mobile(written) == number


@given(st.text())
def test_any_text_normalises_or_is_refused_clearly(text: str) -> None:
    try:
        out = normalize_cn_mobile(text)
    except EntryInvalid as exc:
        assert exc.code == "invalid_phone"
    else:
        assert len(out) == 11
        assert out.isdigit()


def test_e164_output_takes_any_valid_number_and_region_reads_local_ones() -> None:
    assert normalize_phone("+1 415 555 2671", output="e164") == "+14155552671"
    assert normalize_phone("010 1234 5678", output="e164") == "+861012345678"
    assert normalize_phone("138 0013 8000", output="e164") == "+8613800138000"
    assert normalize_phone("9123 4567", region="HK", output="e164") == "+85291234567"
    assert normalize_phone("9123 4567", region="HK") == "91234567"
    with pytest.raises(EntryInvalid, match="not a valid phone number"):
        normalize_phone("+1 000 000 0000", output="e164")


def test_region_and_output_are_declared_per_field() -> None:
    registry = crm_registry()
    field = registry.get("customers").fields["phone"]
    assert field == FieldSpec(Phone())
    assert Phone().region == "CN" and Phone().output == "national"
    assert Phone("US", "e164").normalize("(415) 555-2671", "phone") == "+14155552671"
    with pytest.raises(ValueError, match="region"):
        Phone("XX")
    with pytest.raises(ValueError, match="output"):
        Phone("CN", "international")  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [40_000, 1_000_000])
def test_long_input_is_refused_by_its_length_before_any_parsing(size: int) -> None:
    # The old pattern took 20 s on 40 KB: now the length is the first thing checked.
    for junk in ("1 " * (size // 2), "1" * size, "+" + "(1-" * (size // 3)):
        with pytest.raises(EntryInvalid, match="characters; at most"):
            normalize_cn_mobile(junk, "phone")


@example("00861391234")  # an international prefix: the parser strips it
@example("86139123456")
@example("01391234567")  # a trunk prefix
@given(st.text(alphabet="0123456789", min_size=11, max_size=11))
def test_the_stored_form_fast_path_answers_as_the_parser_does(digits: str) -> None:
    """11 ASCII digits skip libphonenumber's parse; the answer must not change."""

    def answer(value: str) -> str:
        try:
            return normalize_phone(value, "phone")
        except EntryInvalid as exc:
            return f"refused: {exc.message}"

    assert answer(digits) == answer(f"tel: {digits}")  # the prefix forces the full parse


def test_full_width_digits_do_not_take_the_fast_path() -> None:
    assert normalize_phone("１３９１２３４５６７８") == "13912345678"
    with pytest.raises(EntryInvalid):
        normalize_phone("٣٩١٢٣٤٥٦٧٨٩")


def _answer(value: str, slow: bool) -> str:
    """normalize_phone's answer for ``value``; ``slow``: through libphonenumber's parse."""
    try:
        if slow:
            return _parsed(value, "phone", "CN", "national")
        return normalize_phone(value, "phone")
    except EntryInvalid as exc:
        return f"refused {exc.code} {exc.field}: {exc.message}"


def _written(
    prefixes: list[str], lengths: tuple[int, int], seps: list[str]
) -> st.SearchStrategy[str]:
    """Numbers starting with 1, written as prefix + 3 digits + sep + 4 digits + sep + rest."""
    return st.builds(
        lambda prefix, d, a, b: f"{prefix}{d[:3]}{a}{d[3:7]}{b}{d[7:]}",
        st.sampled_from(prefixes),
        st.text("0123456789", min_size=lengths[0] - 1, max_size=lengths[1] - 1).map("1".__add__),
        st.sampled_from(seps),
        st.sampled_from(seps),
    )


#: The forms the fast path takes (any 11 digits after the 1), and every near miss.
_TYPED = _written(["", "+86", "+86 ", "+86-"], (11, 11), ["", " ", "-"]) | _written(
    ["", "+86", "+86  ", "86", "0086", "+", "(+86)", " ", "+86."],
    (10, 12),
    ["", " ", "-", "  ", ".", "\t", "--", "/"],
)


@example("+86 139 1234 5678")
@example("11200001234")  # "11200" is an international dialling prefix to libphonenumber
@example("17912001234")
@example("+86 179 1200 1234")
@example("12800138000")
@given(st.one_of(_TYPED, st.text("0123456789 -+", max_size=22)))
def test_the_typed_fast_path_answers_as_libphonenumber_does(written: str) -> None:
    """Every typed form, taken by the fast path or not, gets the parser's exact answer."""
    assert _answer(written, slow=False) == _answer(written, slow=True)


@given(
    st.text("0123456789", min_size=7, max_size=12).map(lambda d: "1" + d[1:])
    | st.text("0123456789", min_size=1, max_size=13)
)
def test_the_cn_number_type_is_libphonenumbers(digits: str) -> None:
    number = phonenumbers.PhoneNumber(country_code=86, national_number=int(digits))
    national = phonenumbers.national_significant_number(number)
    assert _cn_kind(national) == phonenumbers.number_type(number)


def test_the_benchmarks_typed_phones_and_every_writing_here_answer_alike() -> None:
    rng = random.Random(SEED)
    corpus = [customer_fields(i, rng)["phone"] for i in range(2_000)]
    corpus += [f"{p}{n[:3]} {n[3:7]} {n[7:]}" for p in ("", "+86 ") for n in _ALLOCATED]
    for written in corpus:
        assert _answer(written, slow=False) == _answer(written, slow=True), written


#: One number from each mobile and non-mobile block of the 1xx prefixes.
_ALLOCATED = [f"1{a}{b}{c:08d}" for a in range(10) for b in range(10) for c in (0, 12345678)]


def test_the_fast_path_stays_off_when_the_metadata_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As if a libphonenumber release changed CN's prefixes from what the path assumes.
    monkeypatch.setattr("protocol.phone._CN_PREFIXES", ("00", "0", "0"))
    _fast_cn.cache_clear()
    try:
        assert _typed_cn_mobile("13912345678") is None
        assert normalize_phone("+86 139 1234 5678") == "13912345678"  # parsed
    finally:
        monkeypatch.undo()
        _fast_cn.cache_clear()
    assert _typed_cn_mobile("+86 139 1234 5678") == "13912345678"
