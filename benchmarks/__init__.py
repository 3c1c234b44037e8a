"""fieldsync benchmarks: every headline figure a ratio against a baseline run alongside.

``python -m benchmarks`` (``make bench``) runs them all and writes
``bench-results/latest.json``; ``--quick`` (``make bench-quick``) runs the same code
on tiny sizes only to prove it still works. See docs/performance.md.
"""

from ._common import Sizes
from .suite import BENCHMARKS, GOALS, format_table, run_suite

__all__ = ["BENCHMARKS", "GOALS", "Sizes", "format_table", "run_suite"]
