"""The options every workload takes, and how every workload ends: write the result, compare, report."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.lib import results
from bench.lib.photos import REPO


def add_common(parser: argparse.ArgumentParser) -> None:
    """Add ``--smoke``, ``--out`` and ``--compare`` to a workload's parser."""
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="one tiny round on the bundled sample photos, to check the workload runs (figures mean nothing)",
    )
    parser.add_argument(
        "--out", help=f"result file (default: a new file in {results.results_dir()}); never inside the repository"
    )
    parser.add_argument(
        "--compare", metavar="FILE", help="a result or a baseline (bench/baselines/*.json) to compare this run with"
    )


def parser(name: str, doc: str | None) -> argparse.ArgumentParser:
    """Return the argument parser of workload ``name`` (its module docstring is ``doc``), with the common options."""
    made = argparse.ArgumentParser(
        prog=f"python -m bench {name}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common(made)
    return made


def add_tree(parser: argparse.ArgumentParser, what: str = "measured") -> None:
    parser.add_argument(
        "--tree",
        type=Path,
        default=REPO,
        help=f"checkout whose thumbsvc/ is {what} (e.g. a `git worktree add --detach` of a commit); default this one",
    )


def parse_alt(spec: str) -> tuple[str, Path | None, dict[str, str]]:
    """Parse ``NAME=[TREE][:VAR=VALUE,...]`` into (name, tree or None, settings).

    ``base=/tmp/wt-base`` is another checkout; ``nobudget=:THUMBSVC_RENDER_MEMORY_BUDGET=0`` is this
    checkout with a setting; ``arena=:MALLOC_ARENA_MAX=1`` any variable of the server's environment.
    """
    name, sep, rest = spec.partition("=")
    if not sep or not name:
        raise SystemExit(f"--alt {spec!r}: expected NAME=[TREE][:VAR=VALUE,...]")
    tree_text, _, assignments = rest.partition(":")
    settings: dict[str, str] = {}
    for item in filter(None, assignments.split(",")):
        var, eq, value = item.partition("=")
        if not eq:
            raise SystemExit(f"--alt {spec!r}: {item!r} is not VAR=VALUE")
        settings[var] = value
    return name, Path(tree_text).resolve() if tree_text else None, settings


def finish(result: results.Result, args: argparse.Namespace) -> int:
    """Write ``result``, print where, compare it with ``--compare`` if given; return the exit status."""
    path = results.write(result, args.out)
    print(f"\nwrote {path}")
    if args.compare:
        results.print_comparison(args.compare, result.to_json())
    return 0
