"""Draw the contact sheets of docs/gallery.md from the shared corpus.

    python docs/make_gallery.py [--corpus ../shared/corpus] [--out docs]

``gallery-fits.png``: each image through every fit and every cover gravity, all in a
128x80 box (checkerboard = transparent). ``gallery-colour.png``: the raw pixel values
read as if they were sRGB (what a service that ignores profiles shows) next to thumbsvc's
output, for the CMYK, wide-gamut, XYB and grey-profile files. Every cell is rendered by
``thumbsvc.pipeline.render``, exactly as the service would.
"""

from __future__ import annotations

import argparse
import io
import os
from pathlib import Path

from PIL import Image, ImageDraw

from thumbsvc.decode import Limits, configure
from thumbsvc.options import GRAVITIES, make_options
from thumbsvc.pipeline import render

REPO = Path(__file__).resolve().parents[1]
BOX = (128, 80)
CELL = (BOX[0] + 12, BOX[1] + 24)
LABEL_W = 170
FIT_SOURCES = [
    ("photos/lepton__slrhills.jpg", "landscape photo"),
    ("orientation/exifsamples__canon_hdr_NO.jpg", "portrait (EXIF 6)"),
    ("orientation/exiforient__Landscape_6.jpg", "test card, EXIF 6"),
    ("photos/sharp__2569067123_aca715a2ee_o.jpg", "photo, subject off-centre"),
    ("orientation/thumbor__Giunchedi__Filippo_January_2015_01-cmyk-orientation-exif.jpg", "YCCK + orientation 6"),
    ("color/photoprism__Iceland-P3.jpg", "Display P3"),
    ("formats/libwebp__lossy_alpha1.webp", "WebP with alpha"),
    ("animated/weserv__dancing-banana.gif", "animated GIF (frame 1)"),
]
COLUMNS = [
    ("contain", {"fit": "contain"}),
    ("pad", {"fit": "pad"}),
    ("fill", {"fit": "fill"}),
    *((f"cover {gravity}", {"fit": "cover", "gravity": gravity}) for gravity in GRAVITIES),
    ("cover g:0.2:0.3", {"fit": "cover", "gravity": (0.2, 0.3)}),
]
COLOUR_SOURCES = [
    ("color/sharp__Channel_digital_image_CMYK_color.jpg", "YCCK + SWOP profile"),
    ("color/thumbor__cmyk-icc.jpg", "CMYK + SWOP profile"),
    ("color/thumbor__Giunchedi__Filippo_January_2015_01-cmyk.jpg", "YCCK, no profile"),
    ("color/leptonrs__fourcolorchannels.jpg", "CMYK, no profile"),
    ("color/photoprism__Iceland-P3.jpg", "Display P3"),
    ("color/photoprism__example.jpg", "Adobe RGB (1998)"),
    ("color/libvips__sample-xyb.jpg", "XYB (jpegli)"),
    ("color/pillow__icc_profile_big.jpg", "'TIFF RGB' 390 KB profile"),
    ("color/thumbor__grayscale-icc.jpg", "grey, Dot Gain 20%"),
]


def checkerboard(size: tuple[int, int], step: int = 8) -> Image.Image:
    board = Image.new("RGB", size, (236, 236, 236))
    draw = ImageDraw.Draw(board)
    for y in range(0, size[1], step):
        for x in range((y // step) % 2 * step, size[0], 2 * step):
            draw.rectangle((x, y, x + step - 1, y + step - 1), fill=(200, 200, 200))
    return board


def cell(thumb: Image.Image, caption: str = "") -> Image.Image:
    tile = Image.new("RGB", CELL, (255, 255, 255))
    frame = checkerboard(BOX)
    thumb = thumb.convert("RGBA")
    frame.paste(thumb, ((BOX[0] - thumb.width) // 2, (BOX[1] - thumb.height) // 2), thumb)
    tile.paste(frame, (6, 4))
    ImageDraw.Draw(tile).text((6, BOX[1] + 7), caption, fill=(40, 40, 40))
    return tile


def thumbnail(data: bytes, **options: object) -> Image.Image:
    options.setdefault("format", "png")
    rendered = render(data, make_options(width=BOX[0], height=BOX[1], **options), Limits())  # type: ignore[arg-type]
    with Image.open(io.BytesIO(rendered.data)) as image:
        image.seek(0)
        return image.convert("RGBA")


def naive(data: bytes) -> Image.Image:
    """The decoded values shown as if sRGB: no profile, Pillow's CMYK formula, EXIF ignored, never enlarged."""
    with Image.open(io.BytesIO(data)) as image:
        rgb = image.convert("RGB")
    rgb.thumbnail(BOX, Image.Resampling.LANCZOS)
    return rgb


def sheet(rows: list[tuple[str, list[Image.Image]]], header: list[str]) -> Image.Image:
    columns = max(len(tiles) for _, tiles in rows)
    page = Image.new("RGB", (LABEL_W + columns * CELL[0], 24 + len(rows) * CELL[1]), (255, 255, 255))
    draw = ImageDraw.Draw(page)
    for index, title in enumerate(header):
        draw.text((LABEL_W + index * CELL[0] + 6, 6), title, fill=(0, 0, 0))
    for row, (label, tiles) in enumerate(rows):
        top = 24 + row * CELL[1]
        draw.text((6, top + BOX[1] // 2), label, fill=(0, 0, 0))
        for column, tile in enumerate(tiles):
            page.paste(tile, (LABEL_W + column * CELL[0], top))
    return page


def save(page: Image.Image, path: Path) -> None:
    """Write a 256-colour PNG: a contact sheet does not need 24 bits, and the repository stays small."""
    page.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG).save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_corpus = os.environ.get("THUMBSVC_CORPUS") or str(REPO.parent / "shared" / "corpus")
    parser.add_argument("--corpus", type=Path, default=Path(default_corpus))
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    args = parser.parse_args()
    configure(50_000_000)

    rows = []
    for path, label in FIT_SOURCES:
        data = (args.corpus / path).read_bytes()
        rows.append((label, [cell(thumbnail(data, **options)) for _, options in COLUMNS]))
    save(sheet(rows, [name for name, _ in COLUMNS]), args.out / "gallery-fits.png")

    rows = []
    for path, label in COLOUR_SOURCES:
        data = (args.corpus / path).read_bytes()
        rows.append((label, [cell(naive(data), "raw values as sRGB"), cell(thumbnail(data), "thumbsvc")]))
    save(sheet(rows, ["ignoring the profile", "thumbsvc"]), args.out / "gallery-colour.png")
    print(f"wrote {args.out / 'gallery-fits.png'} and {args.out / 'gallery-colour.png'}")


if __name__ == "__main__":
    main()
