"""gallery: gallery pages over loopback HTTP, thumbsvc against thumbor 7.8 in the same run, per core-second.

A page is the three sizes of one photo (150x150 cover, 400x300 and 1200x900 contain), asked one
after another from one queue that all clients share, so a page's sizes arrive close together (in
parallel when there are several clients); every page uses a fresh directory name, so no page
repeats within minutes. thumbsvc runs with its result cache off and its source and decoded-source
caches at their defaults (a page's sizes share one decode), thumbor with no storage. Per round
also: decodes per render, from thumbsvc's /metrics. See ``bench.lib.httpbench``.

    python -m bench gallery                                  # 4 and 8 clients, 3 rounds of 10 s
    python -m bench gallery --alt nodc=:THUMBSVC_DECODED_CACHE_BYTES=0      # what the decoded cache saves
    python -m bench gallery --set w2 --clients 1,4,8
"""

from __future__ import annotations

from bench.lib.httpbench import Gallery, Variant
from bench.lib.httpbench import main as run

VARIANTS: dict[str, Variant] = {"gallery": Gallery()}


def main(argv: list[str] | None = None) -> int:
    return run("gallery", __doc__, VARIANTS, argv)
