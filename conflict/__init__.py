"""Hybrid logical clocks and merge policies. Pure: no I/O, no clock reads."""

from .hlc import Hlc, parse, receive, tick, zero

__all__ = ["Hlc", "parse", "receive", "tick", "zero"]
