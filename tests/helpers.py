"""Helpers shared by the tests (import as ``from tests.helpers import ...``)."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
TEST_IMAGES = REPO / "tests" / "images"
TEST_KEY = "test-key-0123456789"

# The transform that stores an upright picture so that applying orientation N shows it upright again.
STORE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def corpus_path() -> Path | None:
    """The shared corpus: $THUMBSVC_CORPUS, else ../shared/corpus beside the repo; None if absent."""
    candidates = [os.environ.get("THUMBSVC_CORPUS"), str(REPO.parent / "shared" / "corpus")]
    for candidate in candidates:
        if candidate and (Path(candidate) / "MANIFEST.tsv").is_file():
            return Path(candidate)
    return None


def make_photo(size: tuple[int, int] = (1200, 900), *, fmt: str = "JPEG", orientation: int | None = None) -> bytes:
    """A synthetic photo with four coloured quadrants and a white marker near the top-left corner."""
    width, height = size
    image = Image.new("RGB", size, (0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width // 2, height // 2), fill=(220, 30, 30))  # top-left red
    draw.rectangle((width // 2, 0, width, height // 2), fill=(30, 200, 30))  # top-right green
    draw.rectangle((0, height // 2, width // 2, height), fill=(30, 30, 220))  # bottom-left blue
    draw.rectangle((width // 2, height // 2, width, height), fill=(230, 230, 30))  # bottom-right yellow
    buffer = io.BytesIO()
    kwargs: dict[str, Any] = {}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif
    if fmt == "JPEG":
        kwargs["quality"] = 92
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def decode(body: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(body))
    image.load()
    return image
