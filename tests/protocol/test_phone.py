"""The CN mobile rule: every common way of writing a number, and clear refusals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import EntryInvalid, normalize_cn_mobile

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
    ],
)
def test_refusals_say_why(written: str, reason: str) -> None:
    with pytest.raises(EntryInvalid) as info:
        normalize_cn_mobile(written, "phone")
    assert info.value.code == "invalid_phone"
    assert info.value.field == "phone"
    assert reason in info.value.message


@given(
    st.sampled_from("3456789"),
    st.text("0123456789", min_size=9, max_size=9),
    st.sampled_from(["", "+86", "0086", "86", "+86 ", "(+86)"]),
    st.sampled_from([" ", "-", ".", ""]),
)
def test_separators_and_prefixes_never_change_the_number(
    second: str, rest: str, prefix: str, sep: str
) -> None:
    number = "1" + second + rest
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
