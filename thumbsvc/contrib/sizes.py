"""The size a thumbnail will have, known before anything is rendered.

Page templates need exact ``width``/``height`` attributes, so this answers with the
server's own arithmetic (``thumbsvc.geometry.plan``) and, where the source's size is
unknown, only for the fits whose output does not depend on it.
"""

from __future__ import annotations

from thumbsvc.geometry import GeometryError, plan
from thumbsvc.options import MAX_DIMENSION, RenderOptions

# The server refuses oversized outputs with its own, smaller limit; here only the size matters.
_NO_LIMIT = 4 * MAX_DIMENSION


def output_size(options: RenderOptions, source_size: tuple[int, int] | None) -> tuple[int, int] | None:
    """Given options and the upright source size (or None), return the output's pixel size.

    Return None when the size cannot be known: ``contain`` (or a single given side)
    with an unknown source, or options the server would refuse for this source. With
    an unknown source, ``cover`` and ``fill`` are assumed to have a source at least as
    large as the box (a smaller one gives a smaller output of the same aspect ratio).
    ``trim`` makes the source's size depend on its pixels: only a fixed box is known then.
    """
    if source_size is not None and options.trim is None:
        if source_size[0] < 1 or source_size[1] < 1:
            return None
        if options.rotate in (90, 270):
            source_size = (source_size[1], source_size[0])  # the fit sees the turned image
            if options.crop is not None:
                return None  # the crop box turns with it: left to the server
        try:
            return plan(source_size, options, max_output_px=_NO_LIMIT).canvas
        except GeometryError:
            return None
    box_w, box_h = options.box
    if box_w is not None and box_h is not None and options.fit in ("cover", "fill", "pad"):
        return box_w, box_h
    return None
