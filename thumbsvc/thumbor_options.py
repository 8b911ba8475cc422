"""A thumbor URL mapped onto thumbsvc's one pipeline: its filters as ``RenderOptions`` and its
geometry as a ``ThumborGeometry`` planner, after the signature and every bound are checked.

Filters thumbsvc serves (docs/migrating.md has the table): ``quality``, ``format``, ``fill``,
``background_color``, ``upscale``, ``no_upscale``, ``stretch``, ``focal``, ``strip_icc``,
``strip_exif``, ``grayscale``, ``blur``, ``sharpen``, ``rotate``, ``watermark`` (a name from
``THUMBSVC_WATERMARKS`` only) and ``max_age`` (accepted; the service's Cache-Control stands).
thumbor's other built-in filters answer 400 naming the filter; names thumbor does not know are
ignored, as thumbor ignores them. A served filter with arguments out of its bounds is a 400, where
thumbor would skip it silently.
"""

from __future__ import annotations

from collections.abc import Collection

from thumbsvc.errors import BadRequest, Forbidden
from thumbsvc.geometry import FLIPS, ROTATIONS, compose, orientation_of
from thumbsvc.options import RenderOptions
from thumbsvc.thumbor import (
    HALIGNS,
    UNSAFE,
    VALIGNS,
    ThumborPath,
    ThumborPathError,
    ThumborSigner,
    parse_path,
    reencoded_variant,
    split_signature,
)
from thumbsvc.thumbor_filters import HANDLERS, MAX_COORDINATE, UNSUPPORTED, Mapped, bounded
from thumbsvc.thumbor_geometry import ThumborGeometry
from thumbsvc.urls import ThumbPath


class ThumborURLs:
    """Recognise, verify and map thumbor paths for one service (``THUMBSVC_THUMBOR_*``)."""

    def __init__(
        self,
        keys: Collection[str],
        *,
        allow_unsafe: bool,
        sources: str,
        max_output_px: int,
    ) -> None:
        self.signer = ThumborSigner(list(keys))
        self.allow_unsafe = allow_unsafe
        self.sources = sources
        self.max_output_px = max_output_px

    def recognises(self, raw_path: str) -> bool:
        """True when the path's first segment is a thumbor signature (28 characters) or ``unsafe``."""
        return split_signature(raw_path) is not None

    def parse(self, raw_path: str) -> tuple[ThumbPath, ThumborGeometry]:
        """Given a raw thumbor path, return the request as thumbsvc's path (its payload the verified
        thumbor path, one per thumbnail) and thumbor's geometry.

        Raise ``Forbidden`` for a bad signature or a refused ``unsafe``, ``BadRequest`` for the rest.
        """
        parts = split_signature(raw_path)
        if parts is None:
            raise BadRequest("not a thumbor path", public_message="Malformed thumbor URL")
        signature, rest = parts
        variant = reencoded_variant(rest)
        if signature == UNSAFE:
            if not self.allow_unsafe:
                raise Forbidden("unsafe thumbor URL", public_message="Unsafe URLs are not allowed")
        elif not (self.signer.verify(rest, signature) | self.signer.verify(variant, signature)):
            raise Forbidden("bad thumbor signature", public_message="Invalid signature")
        try:
            path = parse_path(variant)
            options, geometry = self.map(path)
        except ThumborPathError as exc:
            raise BadRequest(str(exc), public_message=str(exc)) from exc
        return ThumbPath(signature, variant, options, self.source(path.image)), geometry

    def source(self, image: str) -> str:
        """Given the image part, return the source: an absolute URL as it is, else a path under the
        media root (``media``) or an ``http://`` URL (``http``, as thumbor's http loader reads it)."""
        if not image.strip("/"):
            raise ThumborPathError("No image in the thumbor URL")
        if image.startswith(("http://", "https://", "s3://")):
            return image
        return f"http://{image}" if self.sources == "http" else image.lstrip("/")

    def map(self, path: ThumborPath) -> tuple[RenderOptions, ThumborGeometry]:
        """Given a parsed path, return the options and the planner; raise ``ThumborPathError`` when a
        size or a filter is out of bounds."""
        for side in (path.width, path.height):
            if side > self.max_output_px:
                raise ThumborPathError(f"Output size is limited to {self.max_output_px} px a side")
        if path.crop is not None and max(path.crop) > MAX_COORDINATE:
            raise ThumborPathError(f"Crop box values are at most {MAX_COORDINATE}")
        mapped = Mapped()
        for item in path.filters:
            if item.name in UNSUPPORTED:
                raise ThumborPathError(f"thumbor's {item.name}() filter is not supported")
            handler = HANDLERS.get(item.name)
            if handler is not None:
                handler(item, mapped)
        options = mapped.options
        if path.trim is not None:
            options["trim"] = (bounded(path.trim[1], 0, 255, "trim's tolerance"), None)
        smart = path.smart and not path.fit_in and not mapped.geometry.get("stretch") and not mapped.focal
        if smart:
            options.update(fit="cover", gravity="smart")
        turn = compose(FLIPS[_flip(path.flip_h, path.flip_v)], ROTATIONS[(360 - mapped.rotate) % 360])
        geometry = ThumborGeometry(
            width=path.width,
            height=path.height,
            crop=path.crop,
            fit_in=path.fit_in,
            full=path.full,
            adaptive=path.adaptive,
            halign=HALIGNS[path.halign],
            valign=VALIGNS[path.valign],
            focal=tuple(mapped.focal),
            smart=smart,
            turn=orientation_of(turn),
            trim_corner=(1, 1) if path.trim is not None and path.trim[0] == "bottom-right" else (0, 0),
            **mapped.geometry,
        )
        try:
            return RenderOptions(**options), geometry
        except ValueError as exc:
            raise ThumborPathError(f"Bad thumbor filter: {exc}") from exc


def _flip(horizontal: bool, vertical: bool) -> str | None:
    return ("h" if horizontal else "") + ("v" if vertical else "") or None
