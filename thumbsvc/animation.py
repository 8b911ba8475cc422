"""Animated sources: which frames make up the animation, how long each shows, how often it plays.

Pillow composites every frame for us (GIF disposal, APNG dispose/blend ops, WebP and
AVIF through their libraries), so each frame read here is a complete picture the size
of the canvas. The limits on frame count and frames x canvas pixels are checked in
``decode.check_dimensions`` before any of this runs, so an animation is either
rendered whole or refused with 413, never cut short.

Loop counts differ by format: a GIF's NETSCAPE value counts *repeats* (absent: play
once, 0: forever), WebP's and APNG's count *plays* (0: forever). Inside thumbsvc an
animation carries ``plays`` (0 = forever) and each writer gets its own spelling.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image

# Source formats whose frames are an animation (an MPO's second picture is not).
ANIMATED_SOURCES = frozenset({"GIF", "WEBP", "PNG", "AVIF"})
# Output kinds that can hold an animation.
ANIMATED_KINDS = frozenset({"gif", "webp", "png", "avif"})


@dataclass(frozen=True, slots=True)
class Frame:
    image: Image.Image
    duration_ms: int


def is_animated(image: Image.Image) -> bool:
    return image.format in ANIMATED_SOURCES and int(getattr(image, "n_frames", 1)) > 1


def frame_indices(image: Image.Image) -> range:
    """Return the indices of the frames that play. An APNG's default image is only a fallback for still viewers."""
    first = 1 if image.format == "PNG" and image.info.get("default_image") else 0
    return range(first, int(getattr(image, "n_frames", 1)))


def read_frames(image: Image.Image) -> Iterator[Frame]:
    """Yield every playing frame, composited and decoded, with its duration.

    Each yielded image is the opened image itself, positioned on that frame: use it
    (copy, convert, resize) before taking the next one.
    """
    for index in frame_indices(image):
        image.seek(index)
        image.load()  # WebP and AVIF set the frame's duration only when it is decoded
        yield Frame(image, max(0, round(image.info.get("duration") or 0)))


def source_plays(image: Image.Image) -> int:
    """Return how many times the source animation plays (0 = forever)."""
    loop = image.info.get("loop")
    if image.format == "GIF":
        if loop is None:
            return 1
        return 0 if loop == 0 else int(loop) + 1
    if image.format in ("WEBP", "PNG") and loop is not None:
        return int(loop)
    return 0


def loop_options(kind: str, plays: int) -> dict[str, int]:
    """Return the writer's keyword for ``plays`` (0 = forever) in the ``kind`` format."""
    if kind == "gif":
        if plays == 1:
            return {}  # no NETSCAPE block: play once
        return {"loop": 0 if plays == 0 else plays - 1}
    if kind in ("webp", "png"):
        return {"loop": plays}
    return {}
