"""The one decoder (protocol._decode) accepts and refuses exactly what the marshmallow
schemas do, with the same error dict: on a committed corpus and with Hypothesis."""

from __future__ import annotations

import copy
import importlib.util
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from protocol import ProtocolError, decode_ack, decode_batch
from protocol._decode import load_ack, load_batch
from protocol._schemas import AckSchema, BatchSchema
from protocol.codec import canonical_json

CORPUS = Path(__file__).parent / "corpus" / "decode.json"
_SCHEMAS = {"batch": BatchSchema(), "ack": AckSchema()}
_LOADERS = {"batch": load_batch, "ack": load_ack}


def _maker() -> Any:
    spec = importlib.util.spec_from_file_location(
        "make_decode_corpus", CORPUS.parent.parent / "make_decode_corpus.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAKER = _maker()


def verdicts(kind: str, raw: Any) -> tuple[Any, Any]:
    """(decoder, schema) outcomes: the value, or ("refused", error dict)."""
    try:
        ours: Any = _LOADERS[kind](copy.deepcopy(raw))
    except ProtocolError as exc:
        ours = ("refused", exc.errors)
    try:
        theirs: Any = _SCHEMAS[kind].load(copy.deepcopy(raw))
    except ValidationError as exc:
        theirs = ("refused", exc.messages)
    return ours, theirs


def _cases() -> list[dict[str, Any]]:
    return list(json.loads(CORPUS.read_text()))


def test_the_corpus_is_the_one_the_generator_writes() -> None:
    expected = MAKER.hand_made() + MAKER.generated()
    assert json.loads(CORPUS.read_text()) == json.loads(json.dumps(expected))


def test_the_corpus_holds_both_verdicts_for_both_messages() -> None:
    seen = set()
    for case in _cases():
        ours, _ = verdicts(case["message"], case["input"])
        seen.add((case["message"], isinstance(ours, tuple)))
    assert seen == {("batch", True), ("batch", False), ("ack", True), ("ack", False)}


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c["name"])
def test_decoder_and_schema_agree_on_every_corpus_case(case: dict[str, Any]) -> None:
    ours, theirs = verdicts(case["message"], case["input"])
    assert ours == theirs


@pytest.mark.parametrize("n", [1, 2, 499, 500, 501])
def test_they_agree_on_batches_at_the_size_limit(n: int) -> None:
    ours, theirs = verdicts("batch", MAKER.batch(n))
    assert ours == theirs
    assert isinstance(ours, tuple) == (n > 500)


@settings(max_examples=1500, derandomize=True)
@given(st.integers(0, 2**32), st.integers(1, 3), st.integers(1, 6))
def test_they_agree_on_mutated_batches(seed: int, n: int, times: int) -> None:
    raw = MAKER.mutate(MAKER.batch(n), random.Random(seed), times)
    ours, theirs = verdicts("batch", raw)
    assert ours == theirs


@settings(max_examples=1000, derandomize=True)
@given(st.integers(0, 2**32), st.integers(0, 2), st.integers(1, 6))
def test_they_agree_on_mutated_report_batches(seed: int, n: int, times: int) -> None:
    raw = MAKER.mutate(MAKER.report_batch(n), random.Random(seed), times)
    ours, theirs = verdicts("batch", raw)
    assert ours == theirs


@settings(max_examples=800, derandomize=True)
@given(st.integers(0, 2**32), st.integers(0, 3), st.integers(1, 6))
def test_they_agree_on_mutated_acks(seed: int, n: int, times: int) -> None:
    raw = MAKER.mutate({**MAKER.ack(n), "commands": [MAKER.command(1)]}, random.Random(seed), times)
    ours, theirs = verdicts("ack", raw)
    assert ours == theirs


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=4) | st.sampled_from(MAKER.ODD),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=600, derandomize=True)
@given(st.sampled_from(["batch", "ack"]), _json)
def test_they_agree_on_arbitrary_json(kind: str, raw: Any) -> None:
    ours, theirs = verdicts(kind, raw)
    assert ours == theirs


def test_decode_functions_run_the_decoder_and_explain_refusals() -> None:
    raw = MAKER.batch(2)
    raw["entries"][1]["seq"] = True
    with pytest.raises(ProtocolError) as caught:
        decode_batch(canonical_json(raw))
    assert caught.value.errors == {"entries": {1: {"seq": ["Not a valid integer."]}}}
    with pytest.raises(ProtocolError) as caught:
        decode_ack(b'{"batch_id": "b1", "results": [{"op_id": "o"}]}')
    assert caught.value.errors == {"results": {0: {"status": ["Missing data for required field."]}}}


def _chain(depth: int) -> str:
    return '{"op_id":"o","status":"duplicate","original":' * depth + "null" + "}" * depth


def test_an_ack_nested_as_deep_as_the_parser_allows_decodes_or_is_refused() -> None:
    low, high = 1, 100_000  # the deepest "original" chain the JSON parser still takes
    while low < high:
        mid = (low + high + 1) // 2
        try:
            json.loads(_chain(mid))
            low = mid
        except RecursionError:
            high = mid - 1
    for depth in (low - 1, low - 2, low - 10):  # the ack wraps the chain in two levels
        data = ('{"batch_id":"b1","results":[' + _chain(depth) + "]}").encode()
        try:
            ack = decode_ack(data)  # a RecursionError here would crash the sync loop
        except ProtocolError as exc:
            assert "nests too deeply" in str(exc)
        else:
            assert ack.results[0].status == "duplicate"
