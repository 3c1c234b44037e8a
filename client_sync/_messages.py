"""Human messages for every failure reason, from compiled gettext catalogues.

The source holds only message *ids* (``reason.timeout``...), marked with ``N_`` so
``pybabel extract`` finds them (``babel.cfg``, ``make messages``); the words live in
``client_sync/locale/<lang>/LC_MESSAGES/fieldsync.po``, English included, and are
read from the ``.mo`` files that ``setup.py``'s build step compiles when the package
is built or installed (editable installs too). There is no fallback table: a missing
catalogue raises MessagesMissing, so a build that forgot to compile is caught at once.
"""

from __future__ import annotations

import gettext
import re
from functools import cache
from pathlib import Path

from protocol.reasons import Reason

from .errors import MessagesMissing

#: gettext domain of the catalogues.
DOMAIN = "fieldsync"
#: Where the catalogues are (``<lang>/LC_MESSAGES/fieldsync.mo``).
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
#: The languages with a catalogue; the first is the default.
LANGUAGES = ("en", "zh_Hans")
#: Longest locale tag looked at (hostile input: an app passes what the OS says).
_MAX_TAG = 35
_TAG = re.compile(r"[A-Za-z]{2,8}(?:[-_][A-Za-z0-9]{1,8})*", re.ASCII)
#: Traditional-script tags: no catalogue of theirs, so English rather than Simplified.
_HANT = re.compile(r"zh[-_](?:hant|tw|hk|mo)(?:$|[-_])", re.ASCII | re.IGNORECASE)


def N_(message_id: str) -> str:  # noqa: N802 (the gettext marker's conventional name)
    """Mark a message id for extraction; returns it unchanged."""
    return message_id


#: The message id of each reason; ``{field}`` is the field's name where there is one.
_IDS: dict[Reason, str] = {
    Reason.NETWORK_UNREACHABLE: N_("reason.network_unreachable"),
    Reason.DNS_FAILURE: N_("reason.dns_failure"),
    Reason.TIMEOUT: N_("reason.timeout"),
    Reason.TLS_CERTIFICATE_EXPIRED: N_("reason.tls_certificate_expired"),
    Reason.TLS_CERTIFICATE_UNTRUSTED: N_("reason.tls_certificate_untrusted"),
    Reason.CAPTIVE_PORTAL: N_("reason.captive_portal"),
    Reason.SERVER_ERROR: N_("reason.server_error"),
    Reason.RATE_LIMITED: N_("reason.rate_limited"),
    Reason.DEVICE_REVOKED: N_("reason.device_revoked"),
    Reason.UNAUTHORISED: N_("reason.unauthorised"),
    Reason.UPGRADE_REQUIRED: N_("reason.upgrade_required"),
    Reason.STORAGE_LOW: N_("reason.storage_low"),
    Reason.SCHEMA_MISMATCH: N_("reason.schema_mismatch"),
    Reason.FIELD_TOO_LONG: N_("reason.field_too_long"),
    Reason.INVALID_VALUE: N_("reason.invalid_value"),
    Reason.UNKNOWN_FIELD: N_("reason.unknown_field"),
    Reason.UNKNOWN_COLLECTION: N_("reason.unknown_collection"),
}

#: Reasons about one field: without a field name they use their ``.no_field`` id.
_NO_FIELD: dict[Reason, str] = {
    Reason.FIELD_TOO_LONG: N_("reason.field_too_long.no_field"),
    Reason.INVALID_VALUE: N_("reason.invalid_value.no_field"),
    Reason.UNKNOWN_FIELD: N_("reason.unknown_field.no_field"),
}


#: Server codes whose reason is shared with others but whose remedy is not: their own id.
_BY_CODE: dict[str, str] = {
    # A sibling of the same transaction was refused: this entry's values are fine.
    "tx_rejected": N_("reason.invalid_value.tx_rejected"),
}


def language(locale: str | None) -> str:
    """The catalogue for an app's locale tag: ``zh_Hans`` for Simplified Chinese, else ``en``.

    Takes what an OS reports (``zh-Hans-CN``, ``zh_CN.UTF-8``, ``en-GB``...); a tag
    of a language with no catalogue, or one that is not a tag at all, gets English.
    """
    if locale is None:
        return LANGUAGES[0]
    if not isinstance(locale, str):
        raise TypeError(f"locale must be a string, not {type(locale).__name__}")
    tag = locale.split(".", 1)[0].split("@", 1)[0]
    if len(tag) > _MAX_TAG or not _TAG.fullmatch(tag):
        return LANGUAGES[0]
    if tag.lower().startswith("zh") and not _HANT.match(tag):
        return "zh_Hans"
    return LANGUAGES[0]


def message(
    reason: Reason | str,
    locale: str | None = None,
    *,
    field: str | None = None,
    server_code: str | None = None,
) -> str:
    """The localised message of ``reason``, naming ``field`` where the reason has one
    (``server_code``: the server's own code, for the few with a remedy of their own)."""
    why = Reason(reason)
    catalogue = translations(language(locale))
    if server_code in _BY_CODE:
        return catalogue.gettext(_BY_CODE[server_code])
    if field is None and why in _NO_FIELD:
        return catalogue.gettext(_NO_FIELD[why])
    text = catalogue.gettext(_IDS[why])
    return text.format(field=field) if "{field}" in text else text


@cache
def translations(lang: str) -> gettext.GNUTranslations:
    """The compiled catalogue of ``lang`` (one of LANGUAGES); MessagesMissing if absent."""
    if lang not in LANGUAGES:
        raise ValueError(f"no catalogue for {lang!r}; have {', '.join(LANGUAGES)}")
    path = LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.mo"
    try:
        with path.open("rb") as mo:
            return gettext.GNUTranslations(mo)
    except FileNotFoundError:
        raise MessagesMissing(str(path)) from None


def message_ids() -> list[str]:
    """Every message id the code uses (the catalogues must translate each)."""
    return [*_IDS.values(), *_NO_FIELD.values(), *_BY_CODE.values()]
