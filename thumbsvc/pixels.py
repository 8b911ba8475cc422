"""The pixel operations the render steps use: orientation, JPEG decoding choices, the planar resample,
padding and flattening. Plain functions over Pillow images; ``pipeline.py`` decides when each runs.
"""

from __future__ import annotations

import math

from PIL import ExifTags, Image, ImageFile

from thumbsvc.encoding import ALPHA_FORMATS
from thumbsvc.geometry import REDUCING_GAP, Plan
from thumbsvc.memory import FULL_SCALE, JPEG_FORMATS, stored_bytes
from thumbsvc.options import RenderOptions

# Chroma planes are box-reduced by the whole part of ratio / CHROMA_REDUCING_GAP, then resampled
# to half the output size with CHROMA_FILTER.
CHROMA_REDUCING_GAP = 1.25
CHROMA_FILTER = Image.Resampling.BICUBIC

# Adobe APP14 transform 0: the three components are R, G, B, not Y, Cb, Cr.
ADOBE_RGB_TRANSFORM = 0
RGB_COMPONENT_IDS = (ord("R"), ord("G"), ord("B"))

TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def read_orientation(image: Image.Image) -> int:
    """Return the EXIF orientation (1-8); a missing or broken EXIF block means 1.

    Pillow's ``getexif`` also reads the orientation of PNG eXIf chunks, ImageMagick's
    text chunks, XMP ``tiff:Orientation`` and AVIF ``irot``/``imir`` boxes (which the
    AVIF decoder does not apply itself), so one lookup covers every format.
    """
    try:
        # For a PNG, Pillow's own ``getexif`` decodes the whole image to look for an eXIf chunk after
        # the pixels; ``decode.open_image`` has already put such a chunk in ``info``, so the base
        # class's reading of ``info`` is complete and decodes nothing.
        exif = Image.Image.getexif(image) if image.format == "PNG" else image.getexif()
        value = exif.get(ExifTags.Base.Orientation, 1)
    except Exception:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def upright_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    return (size[1], size[0]) if orientation >= 5 else size


def codes_ycbcr(image: Image.Image) -> bool:
    """True for a three-component JPEG whose components are Y, Cb, Cr (libjpeg's reading of the header).

    JFIF files are YCbCr; Adobe files say so in their transform flag; without either marker,
    component ids R, G, B mean RGB.
    """
    if image.format not in JPEG_FORMATS or image.mode != "RGB":
        return False
    if "jfif" in image.info:
        return True
    if "adobe" in image.info:
        return image.info.get("adobe_transform") != ADOBE_RGB_TRANSFORM
    layers = getattr(image, "layer", [])
    return tuple(layer[0] for layer in layers) != RGB_COMPONENT_IDS


def draft_at(image: Image.Image, eighths: int, *, planar: bool = False) -> float:
    """Let the JPEG decoder scale to ``eighths``/8 (and with ``planar`` hand over YCbCr); return the scale."""
    if image.format not in JPEG_FORMATS or (eighths == FULL_SCALE and not planar):
        return 1.0
    width, height = image.size
    # Pillow's draft offers 1/1, 1/2, 1/4 and 1/8 (it picks the largest scale whose result is at least
    # the size asked for); 3/8 is asked for as 1/2 and then changed below.
    denominator = 2 if eighths == 3 else FULL_SCALE // eighths
    size = (max(1, width // denominator), max(1, height // denominator)) if denominator > 1 else None
    drafted = image.draft("YCbCr" if planar else image.mode, size)
    if drafted is None:
        return 1.0
    if eighths == 3:
        _decode_at_three_eighths(image, (width, height))
        return 3 / FULL_SCALE
    # Pillow answers with the source's extent in decoded pixels: (0, 0, width / scale, height / scale).
    return drafted[1][2] / width


def _decode_at_three_eighths(image: Image.Image, size: tuple[int, int]) -> None:
    """Make a drafted JPEG decode at 3/8 of ``size``.

    libjpeg-turbo scales by any M/8, where Pillow's draft offers 1/2^k: Pillow hands its decoder a
    denominator (``decoderconfig``) that libjpeg reads as the scale 1/denominator and rounds up to
    the next eighth, so 3 gives 3/8 (1/3 rounded up). The decoder writes ``ceil(size * 3/8)``
    pixels, which the image's size and tile must say, as draft's own do for its scales.
    """
    assert isinstance(image, ImageFile.ImageFile) and len(image.tile) == 1
    width, height = (-(-side * 3 // FULL_SCALE) for side in size)
    tile = image.tile[0]
    image.tile = [ImageFile._Tile(tile.codec_name, (0, 0, width, height), tile.offset, tile.args)]
    image._size = (width, height)
    image.decoderconfig = (3, 0)


def frame_bytes(frame: Image.Image, data: bytes) -> int:
    """The memory a decoded frame holds: its pixels, the metadata it carries, and for an MPO its source bytes."""
    held = frame.width * frame.height * stored_bytes(frame.mode)
    held += sum(len(value) for value in frame.info.values() if isinstance(value, bytes))
    # A multi-picture file keeps its source open for its other pictures.
    return held + (len(data) if frame.format == "MPO" else 0)


def resize_planar(image: Image.Image, size: tuple[int, int], box: tuple[float, float, float, float]) -> Image.Image:
    """Resample luma with LANCZOS to ``size`` and chroma to half of it (every encoder this path
    serves keeps chroma at half resolution), then double each chroma sample, which the encoder's
    2x2 averaging turns back into exactly that sample.

    Every full-size step releases the GIL, so another render thread keeps its core: luma is taken
    with ``convert("L")`` (a plain copy of Y that runs outside the GIL, where ``getchannel`` holds
    it) and the chroma planes are picked out only after the box-reduce has made them small.
    """
    luma = image.convert("L").resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=REDUCING_GAP)
    half = ((size[0] + 1) // 2, (size[1] + 1) // 2)
    left, top, right, bottom = box
    # A chroma sample stands for two output pixels: for an odd size the grid reaches one pixel past the box.
    span = ((right - left) * 2 * half[0] / size[0], (bottom - top) * 2 * half[1] / size[1])
    # The decoded chroma planes were upsampled from half resolution (or IDCT-scaled to full size):
    # box-reducing them first costs no detail and makes the resample cheap.
    factor = (
        max(1, int(span[0] / half[0] / CHROMA_REDUCING_GAP)),
        max(1, int(span[1] / half[1] / CHROMA_REDUCING_GAP)),
    )
    chroma_box = (
        left / factor[0],
        top / factor[1],
        (left + span[0]) / factor[0],
        (top + span[1]) / factor[1],
    )
    # Reducing all three bands at once gives each band exactly what reducing it alone would.
    reduced = image.reduce(factor) if factor != (1, 1) else image
    planes = []
    for band in (1, 2):
        plane = extend_edges(reduced.getchannel(band), chroma_box)
        plane = plane.resize(half, CHROMA_FILTER, box=chroma_box)
        plane = plane.resize((2 * half[0], 2 * half[1]), Image.Resampling.NEAREST)
        planes.append(plane if plane.size == size else plane.crop((0, 0, *size)))
    return Image.merge("YCbCr", (luma, *planes))


def extend_edges(plane: Image.Image, box: tuple[float, float, float, float]) -> Image.Image:
    """Return the plane grown by copies of its last column and row until it holds ``box``."""
    width, height = plane.size
    grow = (max(0, math.ceil(box[2]) - width), max(0, math.ceil(box[3]) - height))
    if grow == (0, 0):
        return plane
    grown = plane.crop((0, 0, width + grow[0], height + grow[1]))
    if grow[0]:
        grown.paste(plane.crop((width - 1, 0, width, height)).resize((grow[0], height)), (width, 0))
    if grow[1]:
        grown.paste(
            grown.crop((0, height - 1, width + grow[0], height)).resize((width + grow[0], grow[1])), (0, height)
        )
    return grown


def background_colour(options: RenderOptions, kind: str) -> tuple[int, int, int, int]:
    """The pad and flatten colour: as asked, else transparent where the format has alpha, else white."""
    if options.background is not None:
        hex_ = options.background
        alpha = int(hex_[6:8], 16) if len(hex_) == 8 else 255
        return (int(hex_[0:2], 16), int(hex_[2:4], 16), int(hex_[4:6], 16), alpha)
    return (255, 255, 255, 0) if kind in ALPHA_FORMATS else (255, 255, 255, 255)


def pad(image: Image.Image, layout: Plan, options: RenderOptions, kind: str) -> Image.Image:
    if layout.canvas == image.size and layout.offset == (0, 0):
        return image
    colour = background_colour(options, kind)
    mode = "RGBA" if colour[3] < 255 or image.mode in ("RGBA", "LA") else "RGB"
    canvas = Image.new(mode, layout.canvas, colour if mode == "RGBA" else colour[:3])
    source = image.convert(mode) if image.mode != mode else image
    if mode == "RGBA":
        canvas.alpha_composite(source, layout.offset)
    else:
        canvas.paste(source, layout.offset)
    return canvas


def flatten(image: Image.Image, options: RenderOptions, kind: str) -> Image.Image:
    """For formats without alpha, composite onto the background (white unless asked)."""
    if kind in ALPHA_FORMATS or image.mode not in ("RGBA", "LA"):
        return image
    colour = background_colour(options, kind)[:3]
    rgba = image.convert("RGBA")
    base = Image.new("RGBA", image.size, (*colour, 255))
    base.alpha_composite(rgba)
    return base.convert("RGB" if image.mode == "RGBA" or colour[0] != colour[1] or colour[1] != colour[2] else "L")
