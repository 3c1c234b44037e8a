"""Hybrid logical clocks and merge policies. Pure: no I/O, no clock reads."""

from .hlc import Hlc, parse, receive, tick, zero
from .merge import Merged, Policy, Write, last_writer_wins, merge_fields

__all__ = [
    "Hlc",
    "Merged",
    "Policy",
    "Write",
    "last_writer_wins",
    "merge_fields",
    "parse",
    "receive",
    "tick",
    "zero",
]
