"""http: W1 cold over loopback HTTP, thumbsvc against thumbor 7.8 in the same run, per core-second.

Every request is a render: thumbsvc runs with its result, source and decoded-source caches off
(every other setting at its default, the render memory budget included), thumbor with no storage
and no result storage; each client walks a range of fresh URLs of its own (directory names that
link to the photos), so no two requests in flight are ever identical and thumbsvc's single flight
has nothing to merge (thumbor has none). thumbor runs from its venv (``bench/setup_venvs.sh``)
and is skipped, with a line saying so, when the venv is missing. See ``bench.lib.httpbench`` for
what is verified and reported.

Variants, the same photos from each kind of source (several in one run go round by round, side by side):

- ``cold``: a local media root (the default);
- ``cold-http``: an HTTP origin on 127.0.0.1 serving that media root (allowed by a URL-prefix
  entry of THUMBSVC_ALLOWED_SOURCES and THUMBSVC_ALLOW_PRIVATE_NETWORKS=127.0.0.1/32);
- ``cold-s3``: a private bucket of moto in server mode on 127.0.0.1, SigV4 and IAM checked
  (THUMBSVC_S3_ENDPOINT; throwaway keys made by moto in the server's environment, instance
  metadata off); skipped with a line without obstore or moto[server].

thumbor reads only the local media root, so it runs with ``cold`` alone. Beside thumbnails per
core-second, each variant reports the fetch cost per request: wall ms per fetch (the server's
``thumbsvc_fetch_seconds``), its origin's CPU per fetch, and the server's CPU ms per thumbnail less
``cold``'s in the same round (``cold-s3.c4.thumbsvc/cold.cpu_ms_delta``).

    python -m bench http                                    # 4 and 8 clients, 3 rounds of 10 s
    python -m bench http --variant cold,cold-http,cold-s3   # fetch cost of each kind of source
    python -m bench http --clients 1,4,8 --rounds 5 --duration 15
    python -m bench http --alt nobudget=:THUMBSVC_RENDER_MEMORY_BUDGET=0   # a second thumbsvc, other settings
    python -m bench http --tree /tmp/wt-new --alt base=/tmp/wt-base        # two checkouts in one run
    python -m bench http --thumbsvc-workers 1,2 --thumbor-processes 0      # process model, thumbsvc only
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.lib.httpbench import CACHES_OFF, FOLDERS, Planned, Variant
from bench.lib.httpbench import main as run
from bench.lib.origins import MOTO_MODULES, MotoStore, StaticOrigin, Store, aws_environment, not_installed
from bench.lib.photos import SIZES
from bench.lib.procs import knows_setting

BUCKET = "bench-photos"


class ColdHTTP(Variant):
    """W1 cold from an HTTP origin on loopback: the local variant's media root, directory links and all."""

    name = "cold-http"
    thumbor = False
    compared_with = "cold"

    def __init__(self) -> None:
        self.origin: StaticOrigin | None = None
        self.base = ""  # http://127.0.0.1:PORT once started

    def start(self, photos: list[Path], clients: int, logs: Path) -> Path:
        media = self.media(photos)
        self.origin = StaticOrigin(media)
        self.base = self.origin.start(logs / f"{self.name}-origin.log")
        return media

    def stop(self) -> None:
        if self.origin is not None:
            self.origin.stop()
            self.origin = None

    def helper_pids(self) -> list[int]:
        return [self.origin.pid] if self.origin is not None and self.origin.proc is not None else []

    def facts(self) -> dict[str, Any]:
        return {"sources": "HTTP origin on loopback", "fresh_by": f"{FOLDERS} directory links"}

    def settings(self, media: Path) -> dict[str, str]:
        return {
            "THUMBSVC_ALLOWED_SOURCES": f"{self.base}/",  # a URL-prefix entry: this origin's port only
            "THUMBSVC_ALLOW_PRIVATE_NETWORKS": "127.0.0.1/32",
            **CACHES_OFF,
        }

    def source(self, folder: str, photo: Path) -> str:
        return f"{self.base}/{folder}/{photo.name}"


class ColdS3(Variant):
    """W1 cold from a private bucket of moto on loopback, SigV4 and IAM checked.

    Fresh URLs without 400 copies of each photo: one copy of every photo per client (server-side
    copies in moto, as many as the most clients of the run), and within a copy, distinct ``bg:``
    colours. ``bg`` changes nothing in an opaque JPEG's thumbnail (it pads and flattens alpha only),
    so every answer has the same size and pixels as the local variant's, and a plan has as many URLs
    as the local one. With n clients the plan goes through n copies, one after another, and client
    i starts at the first URL of copy i: two clients never read the same object at once, so no
    single flight of a fetch or a render has anything to merge (each round's ``joins`` shows it).
    """

    name = "cold-s3"
    thumbor = False
    compared_with = "cold"

    def __init__(self) -> None:
        self.moto: MotoStore | None = None
        self.store: Store | None = None

    @staticmethod
    def copies(clients: int) -> int:
        return max(clients, 1)

    @staticmethod
    def key(copy: int, photo: Path) -> str:
        return f"photos/c{copy:02d}/{photo.name}"

    def missing(self, tree: Path) -> str | None:
        gone = not_installed("obstore", *MOTO_MODULES)
        if gone:
            return f"{', '.join(gone)} not installed (pip install -e '.[s3,test]')"
        if not knows_setting(tree, "THUMBSVC_S3_ENDPOINT"):
            return f"{tree} has no S3 sources"
        return None

    def start(self, photos: list[Path], clients: int, logs: Path) -> Path:
        first = {self.key(0, photo): photo for photo in photos}
        copies = {self.key(n, photo): self.key(0, photo) for n in range(1, self.copies(clients)) for photo in photos}
        self.moto = MotoStore(BUCKET, files=first, copies=copies)
        self.store = self.moto.start(logs / f"{self.name}-moto.log")
        return self.media(photos)  # the server reads the bucket only; the root is the local variant's

    def stop(self) -> None:
        if self.moto is not None:
            self.moto.stop()
            self.moto = None

    def helper_pids(self) -> list[int]:
        return [self.moto.pid] if self.moto is not None and self.moto.proc is not None else []

    def facts(self) -> dict[str, Any]:
        return {"sources": "private bucket, moto on loopback, SigV4", "fresh_by": "a copy per client, bg: colours"}

    def settings(self, media: Path) -> dict[str, str]:
        if self.store is None:
            raise RuntimeError(f"{self.name}: start() first (the store's endpoint and keys come from moto)")
        return {
            "THUMBSVC_ALLOWED_SOURCES": f"s3://{BUCKET}/",
            "THUMBSVC_S3_ENDPOINT": self.store.endpoint,
            **aws_environment(self.store),
            **CACHES_OFF,
        }

    def source(self, folder: str, photo: Path) -> str:
        return f"s3://{BUCKET}/photos/{folder}/{photo.name}"

    def plan(self, photos: list[Path], clients: int) -> list[Planned]:
        copies = self.copies(clients)
        shades = -(-FOLDERS // copies)  # as many URLs as the local plan
        return [
            Planned(self.source(f"c{copy:02d}", photo), photo, w, h, fit, f"#{shade:06x}")
            for copy in range(copies)
            for shade in range(shades)
            for photo in photos
            for (w, h, fit) in SIZES
        ]


# Variants of this workload, the first the default.
VARIANTS: dict[str, Variant] = {"cold": Variant(), "cold-http": ColdHTTP(), "cold-s3": ColdS3()}


def main(argv: list[str] | None = None) -> int:
    return run("http", __doc__, VARIANTS, argv)
