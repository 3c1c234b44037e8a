"""``python -m benchmarks [--quick] [--only NAME …] [--out FILE] [--size KEY=N …]``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ._common import Sizes
from .suite import BENCHMARKS, format_table, run_suite, write_json

POSTGRES_ENV = ("FIELDSYNC_BENCH_POSTGRES_URL", "FIELDSYNC_TEST_POSTGRES_URL")


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the suite, print the table, write the JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: prove it works")
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS), default=[])
    parser.add_argument("--out", type=Path, default=None, help="JSON output file")
    parser.add_argument(
        "--size", action="append", default=[], metavar="KEY=N", help="override one size"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="where temporary files go")
    args = parser.parse_args(argv)
    pg = next((os.environ[k] for k in POSTGRES_ENV if os.environ.get(k)), None)
    sizes = Sizes.quick(pg) if args.quick else Sizes(postgres_url=pg)
    for item in args.size:
        key, _, value = item.partition("=")
        if key not in Sizes.__dataclass_fields__ or key == "postgres_url":
            parser.error(f"unknown size {key!r}")
        sizes = sizes.replace(**{key: int(value)})
    out = args.out or Path("bench-results") / ("quick.json" if args.quick else "latest.json")
    results = run_suite(
        sizes, args.only, args.workdir, progress=lambda line: print(line, file=sys.stderr)
    )
    print(format_table(results, goals=not args.quick))
    write_json(results, out)
    print(f"\nwrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
