"""compare: two result files, or a baseline and a result, metric by metric.

    python -m bench compare OLD.json NEW.json
    python -m bench compare bench/baselines/0.1.0.json NEW.json

Medians, the ratio new / old, and a verdict only where the two runs' ranges do not overlap.
Absolute figures compare only on the same machine; ratios to a rival of the same run (unit ``x``)
carry across machines. ``python -m bench NAME --compare FILE`` does the same at the end of a run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.lib import results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench compare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("base", type=Path, help="a result or a baseline")
    parser.add_argument("new", type=Path, nargs="+", help="result files")
    args = parser.parse_args(argv)
    for path in args.new:
        doc = results.load(path)
        if doc.get("schema") != results.SCHEMA:
            raise SystemExit(f"{path}: not a result file")
        print(f"== {doc['workload']}: {path}")
        results.print_comparison(args.base, doc)
    return 0
