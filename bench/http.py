"""http: W1 cold over loopback HTTP, thumbsvc against thumbor 7.8 in the same run, per core-second.

Every request is a render: thumbsvc runs with its result, source and decoded-source caches off
(every other setting at its default, the render memory budget included), thumbor with no storage
and no result storage; each client walks a range of fresh URLs of its own (directory names that
link to the photos), so no two requests in flight are ever identical and thumbsvc's single flight
has nothing to merge (thumbor has none). thumbor runs from its venv (``bench/setup_venvs.sh``)
and is skipped, with a line saying so, when the venv is missing. See ``bench.lib.httpbench`` for
what is verified and reported.

    python -m bench http                                    # 4 and 8 clients, 3 rounds of 10 s
    python -m bench http --clients 1,4,8 --rounds 5 --duration 15
    python -m bench http --alt nobudget=:THUMBSVC_RENDER_MEMORY_BUDGET=0   # a second thumbsvc, other settings
    python -m bench http --tree /tmp/wt-new --alt base=/tmp/wt-base        # two checkouts in one run
    python -m bench http --thumbsvc-workers 1,2 --thumbor-processes 0      # process model, thumbsvc only
"""

from __future__ import annotations

from bench.lib.httpbench import Variant
from bench.lib.httpbench import main as run

# Variants of this workload, the first the default. A new one (an S3 source, say) is a Variant subclass here.
VARIANTS: dict[str, Variant] = {"cold": Variant()}


def main(argv: list[str] | None = None) -> int:
    return run("http", __doc__, VARIANTS, argv)
