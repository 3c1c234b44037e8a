"""Op and tx ids are UUIDv7 strings that carry their row's seq (client_sync/_ids.py)."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client_sync._ids import SEQ_BITS, new_id, seq_of


@given(st.integers(0, 2**SEQ_BITS - 1))
def test_an_id_is_a_uuid7_that_carries_its_seq(seq: int) -> None:
    made = new_id(seq)
    parsed = uuid.UUID(made)
    assert str(parsed) == made  # lowercase, canonical form
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert seq_of(made) == seq


def test_ids_are_time_ordered_and_unique_even_for_one_seq() -> None:
    made = [new_id(5) for _ in range(1_000)]
    assert len(set(made)) == len(made)
    assert [uuid.UUID(m).int >> 80 for m in made] == sorted({uuid.UUID(m).int >> 80 for m in made})


@pytest.mark.parametrize("seq", [-1, 2**SEQ_BITS])
def test_a_seq_that_does_not_fit_is_refused(seq: int) -> None:
    with pytest.raises(ValueError, match="does not fit"):
        new_id(seq)


@given(st.text(max_size=40))
def test_any_text_gives_a_number_or_none_never_an_error(text: str) -> None:
    found = seq_of(text)
    assert found is None or 0 <= found < 2**SEQ_BITS


def test_non_ascii_digits_are_not_read() -> None:
    assert seq_of("01a2071f-b16f-78a1-bc52-٣٣٣٣٣٣٣٣٣٣٣٣") is None
