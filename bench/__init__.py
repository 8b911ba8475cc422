"""thumbsvc's benchmark suite: one runner, results outside git, figures in docs/performance.md.

Run from the repository root (``pip install -e ".[bench]"`` first)::

    python -m bench                      # list the workloads
    python -m bench NAME [options]       # run one: NAME is a module bench/NAME.py
    python -m bench NAME --smoke         # one tiny round on the bundled samples (no figure means anything)
    python -m bench smoke                # every workload's smoke, then plot/compare/baseline on their results
    python -m bench plot RESULT.json     # a PNG per result
    python -m bench compare A.json B.json

A workload is a module ``bench/NAME.py`` with ``main(argv: list[str] | None = None) -> int`` that
accepts ``--smoke``, ``--out FILE`` and ``--compare FILE`` (``bench.lib.cli.add_common``) and writes
one result file (``bench.lib.results``); adding one is adding that file. Tools (plot, compare,
baseline, smoke) are modules too, listed in ``TOOLS``. Shared code lives in ``bench/lib/``;
``bench/lib/adapter.py`` is the only code that calls thumbsvc's internals.

Never run a module as a script (``python bench/http.py``): ``bench/`` on ``sys.path`` would make
``bench/http.py`` shadow the standard library's ``http``.
"""

from __future__ import annotations

import pkgutil

# Modules that are tools over results, not workloads: the smoke does not run them as workloads.
TOOLS = ("plot", "compare", "baseline", "smoke")


def modules() -> list[str]:
    """Return the names of bench/'s runnable modules (workloads and tools), sorted."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.ispkg and not m.name.startswith("_"))


def workloads() -> list[str]:
    return [name for name in modules() if name not in TOOLS]
