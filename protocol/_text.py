"""String rules shared by the decoders and the field types: valid scalars, clean names.

Every check bounds the length first, so the regular expressions below only ever
see short strings (and they are single character classes: linear anyway).
"""

from __future__ import annotations

import re
from typing import Any

#: A lone surrogate (not a Unicode scalar value: it cannot be encoded as UTF-8) or NUL.
_UNSAFE = re.compile("[\x00\ud800-\udfff]")

#: What an id or a name may not hold: control characters (C0, DEL, C1) and surrogates.
_NOT_NAME = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def safe_text(value: str) -> bool:
    """Whether ``value`` is valid Unicode scalars with no NUL (any length)."""
    if value.isascii():  # no surrogate can be there: only NUL to look for
        return "\x00" not in value
    return _UNSAFE.search(value) is None


def is_name(value: object, most: int) -> bool:
    """Whether ``value`` is a string of 1..``most`` characters with no control character."""
    return type(value) is str and 0 < len(value) <= most and _NOT_NAME.search(value) is None


def unsafe_path(value: Any, path: str = "") -> str | None:
    """Where in a parsed JSON value a string (or key) is not safe text; None if nowhere."""
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if type(item) is str:
            if not safe_text(item):
                return where or "$"
        elif type(item) is dict:
            for key, member in item.items():
                if not safe_text(key):
                    return f"{where}/{key.encode('unicode_escape').decode()}"
                stack.append((f"{where}/{key}", member))
        elif type(item) is list:
            stack.extend((f"{where}/{i}", member) for i, member in enumerate(item))
    return None
