"""Draw the contact sheets of docs/gallery.md from the shared corpus.

    python docs/make_gallery.py [--corpus ../shared/corpus] [--out docs]

``gallery-fits.png``: each image through every fit and every cover gravity, all in a
128x80 box (checkerboard = transparent). ``gallery-colour.png``: the raw pixel values
read as if they were sRGB (what a service that ignores profiles shows) next to thumbsvc's
output, for the CMYK, wide-gamut, XYB and grey-profile files. Every cell of these two is
rendered by ``thumbsvc.pipeline.render``, exactly as the service would.
``gallery-filters.png``: each filter (trim, rot, flip, gray, blur, sharp, wm) on a photo, an
orientation test card, a diagram with a black border and a logo with alpha, asked of the real
app (``create_app`` with a key and a watermark this script makes, through signed URLs).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

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

FILTER_SOURCES = [
    ("photos/lepton__slrhills.jpg", "landscape photo"),
    ("orientation/exiforient__Landscape_6.jpg", "test card, EXIF 6"),
    ("png/imagepng__Exoplanet_Phase_Curve__Diagram.png", "diagram, black border"),
    ("formats/libwebp__lossy_alpha1.webp", "WebP logo with alpha"),
]
FILTER_COLUMNS: list[tuple[str, dict[str, Any]]] = [
    ("no filter", {}),
    ("trim:10", {"trim": 10}),
    ("rot:90", {"rotate": 90}),
    ("flip:h", {"flip": "h"}),
    ("flip:v", {"flip": "v"}),
    ("gray:1", {"grayscale": True}),
    ("blur:2", {"blur": 2}),
    ("sharp:2", {"sharpen": 2}),
    ("wm:mark", {"watermark": "mark"}),
    ("trim rot:270 gray", {"trim": 10, "rotate": 270, "grayscale": True}),
]
# The operator's watermark of the filter sheet: a file this script writes under the media root.
WATERMARKS = "mark=marks/mark.png;gravity=south-east;margin=0.04;opacity=0.85;scale=0.5"


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


def watermark_png() -> bytes:
    """The sheet's watermark: a white plate with a blue disc and the word thumbsvc, on transparency."""
    mark = Image.new("RGBA", (180, 60), (0, 0, 0, 0))
    draw = ImageDraw.Draw(mark)
    draw.rounded_rectangle((0, 0, 179, 59), radius=14, fill=(255, 255, 255, 230), outline=(10, 88, 202, 255), width=4)
    draw.ellipse((12, 12, 48, 48), fill=(10, 88, 202, 255))
    draw.text((60, 16), "thumbsvc", fill=(20, 30, 60, 255), font_size=24)
    buffer = io.BytesIO()
    mark.save(buffer, "PNG")
    return buffer.getvalue()


def filter_rows(corpus: Path) -> list[tuple[str, list[Image.Image]]]:
    """Ask the real app for every filter of every source: signed URLs, the service's answers decoded."""
    from starlette.testclient import TestClient

    from thumbsvc.app import create_app
    from thumbsvc.client import URLSigner
    from thumbsvc.config import Settings
    from thumbsvc.filters import parse_watermarks

    rows = []
    with tempfile.TemporaryDirectory(prefix="thumbsvc-gallery-") as tmp:
        # The media root holds copies (the service's jail refuses links out of it) and the watermark.
        root = Path(tmp)
        for path, _ in FILTER_SOURCES:
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(corpus / path, root / path)
        (root / "marks").mkdir()
        (root / "marks" / "mark.png").write_bytes(watermark_png())
        key = "gallery-sheet-key"
        marks = tuple(parse_watermarks(WATERMARKS).values())
        settings = Settings(keys=(key,), media_root=str(root), watermarks=marks, render_slots=2)
        signer = URLSigner(key, base_url="")
        with TestClient(create_app(settings)) as client:
            for path, label in FILTER_SOURCES:
                tiles = []
                for caption, options in FILTER_COLUMNS:
                    response = client.get(signer.path(path, width=BOX[0], height=BOX[1], format="png", **options))
                    if response.status_code != 200:
                        raise SystemExit(f"{path} {caption}: {response.status_code} {response.text.strip()}")
                    with Image.open(io.BytesIO(response.content)) as image:
                        tiles.append(cell(image.convert("RGBA"), caption))
                rows.append((label, tiles))
    return rows


def save(page: Image.Image, path: Path) -> None:
    """Write a 256-colour PNG: a contact sheet does not need 24 bits, and the repository stays small."""
    page.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG).save(path, optimize=True)


SHEETS = ("fits", "colour", "filters")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_corpus = os.environ.get("THUMBSVC_CORPUS") or str(REPO.parent / "shared" / "corpus")
    parser.add_argument("--corpus", type=Path, default=Path(default_corpus))
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    parser.add_argument(
        "--sheets", default=",".join(SHEETS), help=f"which, comma-separated (default {','.join(SHEETS)})"
    )
    args = parser.parse_args()
    sheets = [name.strip() for name in args.sheets.split(",") if name.strip()]
    if not sheets or set(sheets) - set(SHEETS):
        parser.error(f"--sheets: one or more of {', '.join(SHEETS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    configure(50_000_000)

    if "fits" in sheets:
        rows = []
        for path, label in FIT_SOURCES:
            data = (args.corpus / path).read_bytes()
            rows.append((label, [cell(thumbnail(data, **options)) for _, options in COLUMNS]))
        save(sheet(rows, [name for name, _ in COLUMNS]), args.out / "gallery-fits.png")

    if "colour" in sheets:
        rows = []
        for path, label in COLOUR_SOURCES:
            data = (args.corpus / path).read_bytes()
            rows.append((label, [cell(naive(data), "raw values as sRGB"), cell(thumbnail(data), "thumbsvc")]))
        save(sheet(rows, ["ignoring the profile", "thumbsvc"]), args.out / "gallery-colour.png")

    if "filters" in sheets:
        save(sheet(filter_rows(args.corpus), [name for name, _ in FILTER_COLUMNS]), args.out / "gallery-filters.png")
    print("wrote " + ", ".join(str(args.out / f"gallery-{name}.png") for name in sheets))


if __name__ == "__main__":
    main()
