"""Op and transaction ids: UUIDv7 strings that carry the seq of their row.

An id is a UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, the version, 12 random
bits, the variant, then 62 bits of which the low 48 are a seq and the other 14 are
random (the RFC lets rand_b hold a counter). An op_id carries its entry's seq, a
tx_id the seq of its transaction's first entry, so the outbox finds a row by its id
through the primary key, with no index on either id (fewer pages written per
commit; docs/client.md). Ids stay unique per device (the seq is) and time-ordered
within a process (the milliseconds never go back, as with uuid6). Rows written
before layout 4 have purely random ids: ``_tables.IDS_FROM`` says where they end.
"""

from __future__ import annotations

import random
import time

#: Bits of the seq inside an id, and the random bits around it (rand_a: 12, rand_b: 14).
SEQ_BITS = 48
_SEQ_MASK = (1 << SEQ_BITS) - 1
_VERSION_VARIANT = (0x7 << 76) | (0x2 << 62)

#: The random bits need not be secret or unguessable (the seq makes an id unique on
#: its device, the server keys ops by device): a PRNG seeded from os.urandom, not a
#: system call per id.
_random = random.Random()

#: Milliseconds of the last id made: ids stay time-ordered in a process.
_last_ms = [0]


def new_id(seq: int) -> str:
    """A fresh UUIDv7 string carrying ``seq`` (0 <= seq < 2**48)."""
    if not 0 <= seq <= _SEQ_MASK:
        raise ValueError(f"seq {seq} does not fit {SEQ_BITS} bits")
    ms = _last_ms[0] = max(time.time_ns() // 1_000_000, _last_ms[0] + 1)
    bits = _random.getrandbits(26)
    rand = (bits >> 14) << 64 | (bits & 0x3FFF) << SEQ_BITS
    text = f"{ms << 80 | _VERSION_VARIANT | rand | seq:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def seq_of(value: str) -> int | None:
    """The seq an id made by ``new_id`` carries; None for text that is not a UUID.

    Any UUID gives a number: the row it names must still be checked to hold this id.
    """
    if len(value) != 36 or not value.isascii():
        return None
    try:
        return int(value[24:], 16) & _SEQ_MASK
    except ValueError:
        return None
