"""``python -m bench NAME [options]``: run ``bench/NAME.py``'s ``main(argv)``."""

from __future__ import annotations

import importlib
import sys

import bench


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(bench.__doc__)
        print("workloads: " + ", ".join(bench.workloads()))
        print("tools:     " + ", ".join(bench.TOOLS))
        return 0
    name = argv[0].replace("-", "_")
    if name not in bench.modules():
        print(f"no workload or tool {argv[0]!r}; workloads: {', '.join(bench.workloads())}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"bench.{name}")
    status = module.main(argv[1:])
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
