"""Canonical JSON encoding and body compression for batches and acks."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import math
import re
import zlib
from collections.abc import Sequence
from typing import Any, cast

import msgspec

from ._decode import load_ack, load_batch
from ._text import unsafe_path
from .constants import (
    CONTENT_ENCODINGS,
    MAX_FLOAT_LITERAL,
    MAX_INFLATED_BYTES,
    MAX_INT_LITERAL,
    MAX_VERSION_DIGITS,
    PROTOCOL_MAJOR,
)
from .errors import ProtocolError, UnsupportedVersion
from .model import Ack, Batch, Command, Entry, Report, Result

#: Members an entry's digest covers: all but ``tx_count`` (see ``entry_digest``).
_DIGEST_MEMBERS = tuple(f.name for f in dataclasses.fields(Entry) if f.name != "tx_count")

#: "MAJOR.MINOR" in ASCII digits only (``str.isdigit`` would take "²" or "٣").
_VERSION = re.compile(rf"([0-9]{{1,{MAX_VERSION_DIGITS}}})\.[0-9]{{1,{MAX_VERSION_DIGITS}}}")


def _members(value: Any) -> dict[str, Any]:
    """Every member of a message (msgspec writes dataclasses so; json needs telling)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    raise TypeError(f"{type(value).__name__} is not a wire value")


#: The definition of canonical JSON: what ``json.dumps`` gives with these options.
_CANONICAL = json.JSONEncoder(
    sort_keys=True,
    separators=(",", ":"),
    ensure_ascii=False,
    allow_nan=False,
    default=_members,
)

#: The same bytes 5-15x faster (tests/protocol/test_canonical_bytes.py proves it for
#: every JSON value): sorted keys and dataclass members, UTF-8, control characters
#: escaped as ``json`` escapes them. Floats are the one kind it writes differently
#: (``1e16`` for ``1e+16``, ``null`` for NaN), so a value holding one goes to ``json``.
_FAST = msgspec.json.Encoder(order="sorted")


def canonical_json(value: Any) -> bytes:
    """Encode ``value`` as canonical JSON: sorted keys, no spaces, UTF-8, no NaN.

    Byte for byte what ``json.dumps(value, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False, allow_nan=False)`` gives (dataclasses as all their members).
    msgspec writes it unless the value holds a float, or holds what msgspec cannot
    encode (an integer past 64 bits, a lone surrogate): then ``json`` does, or raises.
    """
    if not _has_float(value):
        try:
            return _FAST.encode(value)
        except (TypeError, ValueError, OverflowError, msgspec.EncodeError):
            pass
    return _CANONICAL.encode(value).encode()


def _has_float(value: Any) -> bool:
    """Whether a float stands anywhere in ``value`` (dicts, lists, tuples, dataclasses)."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is float:
            return True
        if kind is dict:
            stack.extend(item.values())
        elif kind is list or kind is tuple:
            stack.extend(item)
        elif kind not in _SCALARS and dataclasses.is_dataclass(item):
            stack.extend(getattr(item, name) for name in _names(kind))
    return False


def _names(cls: type) -> tuple[str, ...]:
    """Member names of a message class, in declaration order (cached)."""
    names = _MEMBERS.get(cls)
    if names is None:
        names = _MEMBERS[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def to_wire(message: Batch | Ack) -> dict[str, Any]:
    """The plain-dict wire form of a message (``None`` members left out of results)."""
    return cast(dict[str, Any], _plain(message))


def encode_batch(batch: Batch) -> bytes:
    """Canonical JSON bytes of a batch."""
    return canonical_json(to_wire(batch))


def encode_entry(entry: Entry) -> bytes:
    """Canonical JSON bytes of one entry, exactly as they stand inside a batch.

    An Entry has no None member (its wire form is itself), and only ``fields`` can
    hold a float (the other members are strings and ints): when every field value is
    a string, int, bool or null, nothing needs scanning before msgspec writes it.
    """
    if _FLAT.issuperset(map(type, entry.fields.values())):
        try:
            return _FAST.encode(entry)
        except (TypeError, ValueError, OverflowError, msgspec.EncodeError):
            pass  # an int past 64 bits, a lone surrogate: json decides
    return canonical_json(entry)


def decode_entry(data: bytes | str) -> Entry:
    """The entry ``encode_entry`` wrote (trusted: our own storage, not the wire)."""
    return Entry(**json.loads(data))


def to_wire_entry(entry: Entry) -> dict[str, Any]:
    """The plain-dict wire form of one entry (``fields`` kept whole, nulls included)."""
    return cast(dict[str, Any], _plain(entry))


def entry_digest(entry: Entry) -> str:
    """What makes two entries with one op_id the same entry: sha256 of every member
    but ``tx_count`` (which describes the transaction, not the change; a 1.x build's
    delivered ops stay duplicates after the upgrade)."""
    plain = {name: getattr(entry, name) for name in _DIGEST_MEMBERS}
    return hashlib.sha256(canonical_json(plain)).hexdigest()


def assemble_batch(
    protocol_version: str,
    batch_id: str,
    device_id: str,
    entries: Sequence[bytes],
    report: Report | None = None,
) -> bytes:
    """The canonical bytes of a batch made of already-encoded entries, never re-encoded.

    Byte for byte what ``encode_batch`` gives for the same batch (a test pins it): the
    batch's members in sorted order, the entries' bytes joined by commas, then the
    report (protocol 2.1), which sorts last, if there is one.
    """
    return b"".join(
        (
            b'{"batch_id":',
            canonical_json(batch_id),
            b',"device_id":',
            canonical_json(device_id),
            b',"entries":[',
            b",".join(entries),
            b'],"protocol_version":',
            canonical_json(protocol_version),
            b"}" if report is None else b',"report":' + encode_report(report) + b"}",
        )
    )


def batch_size(overhead: int, entry_sizes: Sequence[int]) -> int:
    """Bytes of a batch whose empty form takes ``overhead`` bytes, given its entries' sizes."""
    return overhead + sum(entry_sizes) + max(len(entry_sizes) - 1, 0)


def batch_overhead(
    protocol_version: str, batch_id: str, device_id: str, report: Report | None = None
) -> int:
    """Bytes of a batch with no entries (ids of a given length take that many bytes)."""
    return len(assemble_batch(protocol_version, batch_id, device_id, (), report))


def encode_report(report: Report) -> bytes:
    """Canonical JSON bytes of a report, exactly as they stand inside a batch."""
    return canonical_json(_plain(report))


def encode_command(command: Command) -> bytes:
    """Canonical JSON bytes of one command (the server stores them so)."""
    return canonical_json(command)  # a Command has no None member: its wire form is itself


def decode_command(data: bytes | str) -> Command:
    """The command ``encode_command`` wrote (trusted: our own storage, not the wire)."""
    return Command(**json.loads(data))


def encode_result(result: Result) -> bytes:
    """Canonical JSON bytes of one per-entry verdict (``None`` members left out)."""
    return canonical_json(_plain(result))


def decode_result(data: bytes | str) -> Result:
    """A verdict from ``encode_result``'s bytes (trusted: our own storage)."""
    return _result(json.loads(data))


def encode_ack(ack: Ack) -> bytes:
    """Canonical JSON bytes of an ack."""
    return canonical_json(to_wire(ack))


def decode_batch(data: bytes) -> Batch:
    """Decode JSON bytes into a Batch; raise ProtocolError or UnsupportedVersion."""
    raw = _parse(data)
    check_protocol_version(raw.get("protocol_version"))
    return load_batch(raw)


def decode_ack(data: bytes) -> Ack:
    """Decode JSON bytes into an Ack; raise ProtocolError."""
    return load_ack(_parse(data))


def check_protocol_version(version: object) -> None:
    """Raise UnsupportedVersion unless ``version`` is "MAJOR.MINOR" with our major."""
    if not isinstance(version, str):
        raise ProtocolError("protocol_version missing", {"protocol_version": ["required"]})
    match = _VERSION.fullmatch(version) if len(version) <= 2 * MAX_VERSION_DIGITS + 1 else None
    if match is None:
        raise ProtocolError(
            f"protocol_version {version[:20]!a} is not MAJOR.MINOR in ASCII digits",
            {"protocol_version": ["not MAJOR.MINOR"]},
        )
    if int(match.group(1)) != PROTOCOL_MAJOR:
        raise UnsupportedVersion(
            f"protocol {version} is not spoken here (major {PROTOCOL_MAJOR} is)"
        )


def compress(data: bytes, encoding: str = "gzip") -> bytes:
    """Compress a body for the given Content-Encoding."""
    _check_encoding(encoding)
    return gzip.compress(data, compresslevel=6, mtime=0) if encoding == "gzip" else data


def decompress(body: bytes, encoding: str | None, limit: int = MAX_INFLATED_BYTES) -> bytes:
    """Inflate a body, refusing anything that would exceed ``limit`` bytes."""
    encoding = (encoding or "identity").strip().lower()
    _check_encoding(encoding)
    if encoding == "identity":
        data = body
    else:
        inflater = zlib.decompressobj(wbits=31)
        try:
            data = inflater.decompress(body, limit + 1)
        except zlib.error as exc:
            raise ProtocolError(f"body is not valid gzip: {exc}") from exc
        if not inflater.eof and len(data) <= limit:
            raise ProtocolError("gzip body is truncated")
        if inflater.unused_data:
            raise ProtocolError("bytes after the end of the gzip member")
    if len(data) > limit:
        raise ProtocolError(f"body inflates past {limit} bytes")
    return data


def _result(raw: dict[str, Any]) -> Result:
    original = raw.get("original")
    return Result(
        raw["op_id"],
        raw["status"],
        raw.get("code"),
        raw.get("field"),
        raw.get("message"),
        _result(original) if original is not None else None,
    )


def _check_encoding(encoding: str) -> None:
    if encoding not in CONTENT_ENCODINGS:
        raise ProtocolError(
            f"Content-Encoding {encoding!r} not supported (use one of {CONTENT_ENCODINGS})"
        )


def _parse(data: bytes) -> dict[str, Any]:
    """Strict JSON: UTF-8, unique keys, bounded finite numbers, no lone surrogate or NUL."""
    try:
        text = data.decode("utf-8")
        raw = json.loads(
            text,
            object_pairs_hook=_unique_keys,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_refuse_constant,
        )
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"body is not JSON: {exc}") from exc
    except RecursionError as exc:
        raise ProtocolError("body nests too deeply") from exc
    if not isinstance(raw, dict):
        raise ProtocolError("body must be a JSON object")
    # A lone surrogate or NUL can only arrive as a \u escape: raw control characters
    # are refused by the JSON parser and raw surrogates by the UTF-8 decoder.
    where = unsafe_path(raw) if "\\u" in text else None
    if where is not None:
        raise ProtocolError(
            f"a string at {where} holds a lone surrogate or NUL",
            {where: ["not valid Unicode text (lone surrogate or NUL)"]},
        )
    return raw


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ProtocolError(
                    f"duplicate JSON key {key[:40]!a}", {"_schema": ["duplicate JSON key"]}
                )
            seen.add(key)
    return out


def _parse_int(literal: str) -> int:
    if len(literal) > MAX_INT_LITERAL:
        raise ProtocolError(
            f"an integer of {len(literal)} characters (at most {MAX_INT_LITERAL})",
            {"_schema": ["integer out of range"]},
        )
    return int(literal)


def _parse_float(literal: str) -> float:
    value = float(literal) if len(literal) <= MAX_FLOAT_LITERAL else math.inf
    if not math.isfinite(value):
        raise ProtocolError(
            f"number {literal[:40]} is out of range", {"_schema": ["number out of range"]}
        )
    return value


def _refuse_constant(name: str) -> None:
    raise ProtocolError(f"{name} is not a JSON value")


_SCALARS = frozenset((str, int, float, bool, type(None)))
#: Field values msgspec writes exactly as ``json`` does (see ``encode_entry``).
_FLAT = frozenset((str, int, bool, type(None)))

#: Optional list members left off the wire when empty, like ``None`` ones: an ack with
#: no commands is byte for byte a 2.0 ack.
_LEFT_OFF_EMPTY = frozenset(("commands",))

#: Member names of each message class, in declaration order.
_MEMBERS: dict[type, tuple[str, ...]] = {}


def _plain(value: Any, keep_nones: bool = False) -> Any:
    """Messages as plain dicts and lists, ``None`` members (and empty ``commands``) left
    out, an entry's ``fields`` kept whole, nulls included.

    The same result as ``dataclasses.asdict`` then pruning, without asdict's deep
    copies (they were most of the cost of encoding a batch).
    """
    cls = type(value)
    if cls in _SCALARS:
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = _names(cls)
        out: dict[str, Any] = {}
        for name in names:
            member = getattr(value, name)
            if name == "fields":
                out[name] = _plain(member, keep_nones=True)
            elif name in _LEFT_OFF_EMPTY and not member:
                continue
            elif member is not None or keep_nones:
                out[name] = _plain(member, keep_nones)
        return out
    if isinstance(value, dict):
        return {k: _plain(v, keep_nones) for k, v in value.items() if v is not None or keep_nones}
    if isinstance(value, list | tuple):
        return [_plain(v, keep_nones) for v in value]
    return value
