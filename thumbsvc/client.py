"""Build signed thumbnail URLs. Depends on nothing heavier than itsdangerous.

>>> signer = URLSigner(key="secret", base_url="https://img.example.com")
>>> signer.url("photos/cat.jpg", width=300, height=200, fit="cover")  # doctest: +SKIP
'https://img.example.com/<sig>/300x200/fit:cover/photos/cat.jpg'
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from thumbsvc.options import MAX_DIMENSION, make_options
from thumbsvc.signing import PathSigner
from thumbsvc.urls import build_payload

__all__ = ["DEFAULT_MAX_SIZE", "URLSigner"]

# A default server's THUMBSVC_MAX_OUTPUT_PX: it answers 400 to a larger box, so the client refuses to sign one.
DEFAULT_MAX_SIZE = 4096


class URLSigner:
    """Sign thumbnail URLs for one service.

    ``key`` is one key, a comma-separated list or a sequence (newest first; the
    first signs). ``base_url`` may carry a path prefix; it is not signed.
    ``max_size`` is the largest output side in pixels (width or height times
    ``dpr``) the service allows: its ``THUMBSVC_MAX_OUTPUT_PX``, 4096 by default.
    """

    def __init__(self, key: str | Sequence[str], base_url: str = "", *, max_size: int = DEFAULT_MAX_SIZE) -> None:
        keys = [k.strip() for k in key.split(",")] if isinstance(key, str) else [k.strip() for k in key]
        self._signer = PathSigner([k for k in keys if k] or [""])
        self.base_url = base_url.rstrip("/")
        if isinstance(max_size, bool) or not isinstance(max_size, int) or not 1 <= max_size <= MAX_DIMENSION:
            raise ValueError(f"max_size must be an integer from 1 to {MAX_DIMENSION}, not {max_size!r}")
        self.max_size = max_size

    def path(self, source: str, **options: Any) -> str:
        """Return the signed path (``/{sig}/{options}/{source}``) without the base URL."""
        if not isinstance(source, str) or not source:
            raise ValueError("source must be a non-empty string")
        spec = make_options(**options)
        for side, pixels in zip(("width", "height"), spec.box, strict=True):
            if pixels is not None and pixels > self.max_size:
                raise ValueError(
                    f"{side} {getattr(spec, side)} at dpr {spec.dpr:g} is {pixels} px, over the service's limit of"
                    f" {self.max_size} px a side; if the service allows more (THUMBSVC_MAX_OUTPUT_PX), say so with"
                    " max_size= (thumbsvc url --max-size)"
                )
        payload = build_payload(spec, source)
        return f"/{self._signer.sign(payload)}/{payload}"

    def url(self, source: str, **options: Any) -> str:
        """Return the signed URL of a thumbnail of ``source``.

        Keyword arguments: width, height, fit, gravity, crop, format, quality, dpr,
        background, upscale (see DESIGN). Raise ``ValueError`` on a bad argument.
        """
        return self.base_url + self.path(source, **options)

    def srcset(
        self,
        source: str,
        *,
        widths: Iterable[int] | None = None,
        densities: Iterable[float] | None = None,
        **options: Any,
    ) -> str:
        """Return a ``srcset`` value: by ``widths`` (``url 320w, …``) or ``densities`` (``url 2x, …``).

        With widths, a given ``height`` is scaled to keep the width:height ratio of
        ``options``. With densities, each entry is the same box at that ``dpr``.
        """
        if (widths is None) == (densities is None):
            raise ValueError("give exactly one of widths or densities")
        entries = []
        if widths is not None:
            base_w, base_h = options.pop("width", None), options.pop("height", None)
            for width in widths:
                height = None
                if base_h is not None:
                    if base_w is None:
                        raise ValueError("a srcset by widths with a height needs a width for the aspect ratio")
                    height = max(1, round(width * base_h / base_w))
                entries.append(f"{self.url(source, width=width, height=height, **options)} {width}w")
        else:
            assert densities is not None
            options.pop("dpr", None)
            for density in densities:
                label = f"{float(density):g}x"
                entries.append(f"{self.url(source, dpr=density, **options)} {label}")
        if not entries:
            raise ValueError("srcset needs at least one width or density")
        return ", ".join(entries)
