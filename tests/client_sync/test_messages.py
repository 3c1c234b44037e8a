"""Messages come from compiled gettext catalogues, in English and Simplified Chinese.

The code holds message ids only (``reason.timeout``), so a message that reads as
words proves a compiled .mo was read: there is no fallback table to fall back to.
"""

from __future__ import annotations

import gettext
import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from client_sync import _messages
from client_sync._messages import LANGUAGES, LOCALE_DIR, language, message, message_ids
from client_sync.errors import MessagesMissing
from protocol.reasons import Reason

ROOT = Path(__file__).resolve().parents[2]
FIELD_REASONS = (Reason.FIELD_TOO_LONG, Reason.INVALID_VALUE, Reason.UNKNOWN_FIELD)


def _po(lang: str) -> dict[str, str]:
    with (LOCALE_DIR / lang / "LC_MESSAGES" / "fieldsync.po").open("rb") as f:
        return {m.id: m.string for m in read_po(f) if m.id}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_reason_has_a_message_read_from_the_compiled_catalogue(lang: str) -> None:
    mo = LOCALE_DIR / lang / "LC_MESSAGES" / "fieldsync.mo"
    with mo.open("rb") as f:
        compiled = gettext.GNUTranslations(f)
    po = _po(lang)
    for reason in Reason:
        text = message(reason, lang, field="phone")
        assert not text.startswith("reason."), f"{lang}: {reason} has no translation"
        assert text == compiled.gettext(_messages._IDS[reason]).format(field="phone")
        assert text == po[_messages._IDS[reason]].format(field="phone")
    assert _messages.translations(lang)._catalog  # type: ignore[attr-defined]


def test_the_compiled_catalogues_match_their_po_files() -> None:
    """A .po edited without a rebuild is caught here (``make`` reinstalls on a .po change)."""
    for lang in LANGUAGES:
        with (LOCALE_DIR / lang / "LC_MESSAGES" / "fieldsync.mo").open("rb") as f:
            compiled = gettext.GNUTranslations(f)
        for msgid, msgstr in _po(lang).items():
            assert compiled.gettext(msgid) == msgstr, f"{lang}: {msgid} is stale; run make"


def test_the_catalogues_and_the_template_cover_every_id_the_code_uses() -> None:
    ids = set(message_ids())
    with (LOCALE_DIR / "fieldsync.pot").open("rb") as f:
        template = {m.id for m in read_po(f) if m.id}
    assert template == ids
    for lang in LANGUAGES:
        po = _po(lang)
        assert set(po) == ids and all(po.values()), f"{lang} misses a translation"


def test_the_template_is_what_pybabel_extracts_from_the_code(tmp_path: Path) -> None:
    out = tmp_path / "fresh.pot"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "babel.messages.frontend",
            "extract",
            "-F",
            "babel.cfg",
            "-o",
            str(out),
            ".",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    with out.open("rb") as f:
        assert {m.id for m in read_po(f) if m.id} == set(message_ids())


def test_chinese_differs_from_english_and_names_the_field() -> None:
    for reason in Reason:
        assert message(reason, "zh_Hans") != message(reason, "en")
    for reason in FIELD_REASONS:
        for lang in LANGUAGES:
            assert "“phone”" in message(reason, lang, field="phone")
            assert "{field}" not in message(reason, lang)
    assert re.search(r"[\u4e00-\u9fff]", message(Reason.TIMEOUT, "zh_Hans"))


def test_a_field_name_is_shown_as_it_is_never_formatted() -> None:
    text = message(Reason.INVALID_VALUE, "en", field="{0}{field}%s")
    assert "“{0}{field}%s”" in text


@pytest.mark.parametrize(
    ("tag", "lang"),
    [
        (None, "en"),
        ("en", "en"),
        ("en-GB", "en"),
        ("zh_Hans", "zh_Hans"),
        ("zh-Hans-CN", "zh_Hans"),
        ("zh_CN.UTF-8", "zh_Hans"),
        ("zh", "zh_Hans"),
        ("zh-TW", "en"),
        ("zh_Hant_HK", "en"),
        ("fr_FR", "en"),
        ("", "en"),
        ("x" * 10_000, "en"),
        ("zh\x00", "en"),
        ("zh\udcff", "en"),
        ("٣٣", "en"),
    ],
)
def test_locale_tags_choose_a_catalogue(tag: str | None, lang: str) -> None:
    assert language(tag) == lang


def test_a_locale_that_is_not_text_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        language(b"zh")  # type: ignore[arg-type]


def test_a_missing_catalogue_raises_rather_than_falling_back(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(_messages, "LOCALE_DIR", tmp_path)
    _messages.translations.cache_clear()
    try:
        with pytest.raises(MessagesMissing, match="pip install"):
            message(Reason.TIMEOUT, "en")
    finally:
        _messages.translations.cache_clear()


def test_a_refused_sibling_gets_its_own_remedy_in_both_languages() -> None:
    for lang in LANGUAGES:
        text = message(Reason.INVALID_VALUE, lang, server_code="tx_rejected")
        assert text != message(Reason.INVALID_VALUE, lang)
        assert text == _po(lang)["reason.invalid_value.tx_rejected"]
