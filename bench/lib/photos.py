"""The photo sets the workloads use, which thumbnails of them, and the geometry each must have.

- ``w1``: six real 8-24 MP photos from the shared corpus, three thumbnails each (150x150 cover,
  400x300 contain, 1200x900 contain, JPEG q85).
- ``w2``: the same photos pre-shrunk to a 1600 px long edge (typical web uploads).
- ``w1r``: W1 stored the way phones store photos taken sideways: pixels turned on their side
  (EXIF orientation 6 or 8, alternately) or upside down (3), re-encoded at q92 with the profile kept.
- ``mix24``, ``progressive24``, ``baseline24``: 24 MP JPEGs (the corpus's progressive craft-beer as
  it is and re-encoded baseline; a 16 MP landscape scaled to 6000x4000, baseline and progressive).
- ``other24``: 24 MP PNG and WebP sources, opaque and with alpha.
- ``samples``: the three 1000 px photos bundled with thumbsvc, for smoke runs (always present).

Derived sets are built once into ``$THUMBSVC_BENCH_CACHE/data`` (default ``~/.cache/thumbsvc-bench``),
outside the repository.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
W1_NAMES = (
    "lepton__iphone",
    "exifsamples__HMD_Nokia_8.3_5G",
    "exifsamples__42_IndexError",
    "lepton__slrhills",
    "leptonrs__zeros_in_dqt_tables",
    "immich__craft-beer",
)
SIZES = ((150, 150, "cover"), (400, 300, "contain"), (1200, 900, "contain"))
QUALITY = 85
W2_LONG_EDGE = 1600
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


@dataclass(frozen=True)
class Job:
    """One thumbnail: a source file and the box it must fit."""

    name: str
    path: str
    width: int
    height: int
    fit: str

    @property
    def label(self) -> str:
        return f"{self.name} {self.width}x{self.height} {self.fit}"


def bench_home() -> Path:
    """Return the suite's folder outside the repository: derived photo sets, results, competitors' venvs."""
    return Path(os.environ.get("THUMBSVC_BENCH_CACHE") or os.path.expanduser("~/.cache/thumbsvc-bench"))


def cache_dir() -> Path:
    path = bench_home() / "data"
    path.mkdir(parents=True, exist_ok=True)
    return path


def sample_photos() -> list[Path]:
    """Return the photos bundled with thumbsvc (three 1000 px JPEGs): small, and always there."""
    return sorted((REPO / "thumbsvc" / "samples").glob("*.jpg"))


def corpus_photos() -> Path:
    corpus = os.environ.get("THUMBSVC_CORPUS") or str(REPO.parent / "shared" / "corpus")
    return Path(corpus) / "photos"


def w1_photos(folder: str | Path | None = None) -> list[Path]:
    """Return the W1 photos: every image in ``folder``, or the six corpus photos."""
    if folder is not None:
        found = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise SystemExit(f"no images in {folder}")
        return found
    paths = [corpus_photos() / f"{name}.jpg" for name in W1_NAMES]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SystemExit(f"corpus photos missing: {', '.join(missing)} (set THUMBSVC_CORPUS or pass a folder)")
    return paths


def w2_photos(photos: list[Path], long_edge: int = W2_LONG_EDGE) -> list[Path]:
    """Return the W1 photos shrunk to ``long_edge`` (upright, sRGB profile kept, JPEG q90), building them once."""
    from PIL import Image

    def shrunk(src: Path) -> bytes:
        image, icc = upright_rgb(src)
        scale = long_edge / max(image.size)
        if scale < 1:
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            image = image.resize(size, Image.Resampling.LANCZOS)
        return encode_jpeg(image, quality=90, icc_profile=icc)

    return [
        built_once(cache_dir() / f"w2-{long_edge}-{source_tag(src)}" / f"{src.stem}.jpg", src, shrunk) for src in photos
    ]


# EXIF orientation of each W1R photo in turn, and the transpose that stores an upright image that way.
W1R_ORIENTATIONS = (6, 8, 3)
STORE_AS = {3: "ROTATE_180", 6: "ROTATE_90", 8: "ROTATE_270"}


def w1r_photos(photos: list[Path]) -> list[Path]:
    """Return the W1 photos stored sideways or upside down with the EXIF orientation that turns them upright."""
    from PIL import Image

    out = []
    for index, src in enumerate(photos):
        orientation = W1R_ORIENTATIONS[index % len(W1R_ORIENTATIONS)]

        def stored(src: Path, orientation: int = orientation) -> bytes:
            image, icc = upright_rgb(src)
            exif = Image.Exif()
            exif[0x0112] = orientation
            turned = image.transpose(Image.Transpose[STORE_AS[orientation]])
            return encode_jpeg(turned, quality=92, icc_profile=icc, exif=exif.tobytes())

        folder = cache_dir() / f"w1r-{source_tag(src, f':{orientation}')}"
        out.append(built_once(folder / f"{src.stem}.jpg", src, stored))
    return out


def source_tag(src: Path, extra: str = "") -> str:
    """A short tag that changes when the source file (path, size, mtime) or ``extra`` changes."""
    stat = src.stat()
    key = f"{src.resolve()}:{stat.st_size}:{stat.st_mtime_ns}{extra}"
    return hashlib.blake2b(key.encode(), digest_size=4).hexdigest()


def built_once(dest: Path, src: Path, build: Callable[[Path], bytes]) -> Path:
    """Return ``dest``, writing ``build(src)`` there first (atomically) unless it exists."""
    if not dest.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(".tmp")
        tmp.write_bytes(build(src))
        tmp.replace(dest)
    return dest


def upright_rgb(src: Path) -> tuple[Any, bytes | None]:
    """Open ``src``, apply its EXIF orientation, convert to RGB (or keep L); return it and its ICC profile."""
    from PIL import Image, ImageOps

    with Image.open(src) as opened:
        icc = opened.info.get("icc_profile")
        image = ImageOps.exif_transpose(opened)
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    return image, icc


def encode_jpeg(image: Any, **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **params)
    return buffer.getvalue()


def mix24_photos() -> list[Path]:
    """Return four 24 MP JPEGs: craft-beer progressive (as in the corpus) and baseline, a landscape in both kinds."""
    from PIL import Image

    craft = corpus_photos() / "immich__craft-beer.jpg"
    hills = corpus_photos() / "lepton__slrhills.jpg"
    for path in (craft, hills):
        if not path.is_file():
            raise SystemExit(f"corpus photo missing: {path} (set THUMBSVC_CORPUS)")

    def baseline_craft(src: Path) -> bytes:
        with Image.open(src) as opened:
            icc = opened.info.get("icc_profile")
            return encode_jpeg(opened.convert("RGB"), quality=90, icc_profile=icc)

    def landscape(progressive: bool) -> Callable[[Path], bytes]:
        def build(src: Path) -> bytes:
            with Image.open(src) as opened:
                image = opened.convert("RGB").resize((6000, 4500), Image.Resampling.BICUBIC).crop((0, 250, 6000, 4250))
            return encode_jpeg(image, quality=90, progressive=progressive)

        return build

    folder = cache_dir() / f"jpeg24-{source_tag(craft)}-{source_tag(hills)}"
    return [
        built_once(folder / "craft-beer-progressive.jpg", craft, lambda src: src.read_bytes()),
        built_once(folder / "craft-beer-baseline.jpg", craft, baseline_craft),
        built_once(folder / "slrhills-baseline.jpg", hills, landscape(False)),
        built_once(folder / "slrhills-progressive.jpg", hills, landscape(True)),
    ]


def other24_photos() -> list[Path]:
    """Return 24 MP PNG and WebP sources, RGB and RGBA (a smooth picture, so the PNGs stay under the 25 MB limit)."""
    from PIL import Image

    craft = corpus_photos() / "immich__craft-beer.jpg"
    if not craft.is_file():
        raise SystemExit(f"corpus photo missing: {craft} (set THUMBSVC_CORPUS)")
    made: dict[str, Any] = {}

    def picture(alpha: bool) -> Any:
        if "rgb" not in made:
            with Image.open(craft) as opened:
                opened.draft("RGB", (750, 500))
                made["rgb"] = opened.convert("RGB").resize((6000, 4000), Image.Resampling.BICUBIC)
        if not alpha:
            return made["rgb"]
        rgba = made["rgb"].copy()
        rgba.putalpha(Image.linear_gradient("L").resize((6000, 4000)))
        return rgba

    def build(alpha: bool, fmt: str) -> Callable[[Path], bytes]:
        def encode(_: Path) -> bytes:
            buffer = io.BytesIO()
            params = {"compress_level": 9} if fmt == "PNG" else {"quality": 80}
            picture(alpha).save(buffer, fmt, **params)
            return buffer.getvalue()

        return encode

    folder = cache_dir() / f"other24-{source_tag(craft)}"
    return [
        built_once(folder / f"smooth-24mp-{mode}.{fmt.lower()}", craft, build(mode == "rgba", fmt))
        for fmt in ("PNG", "WEBP")
        for mode in ("rgb", "rgba")
    ]


SETS = ("w1", "w2", "w1r", "mix24", "progressive24", "baseline24", "other24", "samples")


def photo_set(name: str, folder: str | Path | None = None) -> list[Path]:
    """Return the photos of set ``name`` (see the module's docstring); ``folder`` replaces W1's corpus photos."""
    if name == "samples":
        return sample_photos()
    if name in ("mix24", "progressive24", "baseline24"):
        photos = mix24_photos()
        return photos if name == "mix24" else [p for p in photos if p.stem.endswith(name.removesuffix("24"))]
    if name == "other24":
        return other24_photos()
    w1 = w1_photos(folder)
    if name == "w1":
        return w1
    if name == "w2":
        return w2_photos(w1)
    if name == "w1r":
        return w1r_photos(w1)
    raise SystemExit(f"unknown photo set {name!r}: one of {', '.join(SETS)}")


def jobs_for(photos: list[Path], sizes: tuple[tuple[int, int, str], ...] = SIZES) -> list[Job]:
    """Return the thumbnails of each photo (by default the three ``SIZES``), photo by photo."""
    return [Job(p.stem, str(p), w, h, fit) for p in photos for (w, h, fit) in sizes]


def parse_sizes(text: str) -> tuple[tuple[int, int, str], ...]:
    """Parse ``400x300:cover,150x150:cover`` (``WxH:fit``, fit ``cover`` or ``contain``) into job sizes."""
    sizes = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        box, _, fit = item.partition(":")
        width, _, height = box.partition("x")
        if not (width.isdigit() and height.isdigit() and int(width) and int(height)) or fit not in ("cover", "contain"):
            raise SystemExit(f"--sizes: {item!r} is not WxH:cover or WxH:contain")
        sizes.append((int(width), int(height), fit))
    if not sizes:
        raise SystemExit("--sizes: no size given")
    return tuple(sizes)


def expected_size(src_w: int, src_h: int, width: int, height: int, fit: str) -> tuple[int, int]:
    """Return the output size thumbsvc's contract gives (no upscaling)."""
    if fit == "contain":
        scale = min(width / src_w, height / src_h, 1.0)
        if scale == 1.0:
            return src_w, src_h
        if width / src_w <= height / src_h:
            return width, max(1, round(src_h * scale))
        return max(1, round(src_w * scale)), height
    # cover: the exact box, or the largest box of that aspect the source allows.
    if src_w >= width and src_h >= height:
        return width, height
    shrink = min(src_w / width, src_h / height)
    return max(1, round(width * shrink)), max(1, round(height * shrink))


def source_box(src_w: int, src_h: int, out_w: int, out_h: int, fit: str) -> tuple[float, float, float, float]:
    """Return the (float) region of the upright source that an ideal ``fit`` maps onto ``out_w`` x ``out_h``."""
    if fit != "cover":
        return (0.0, 0.0, float(src_w), float(src_h))
    scale = max(out_w / src_w, out_h / src_h)
    crop_w, crop_h = out_w / scale, out_h / scale
    left, top = max(0.0, (src_w - crop_w) / 2), max(0.0, (src_h - crop_h) / 2)
    return (left, top, min(float(src_w), left + crop_w), min(float(src_h), top + crop_h))
