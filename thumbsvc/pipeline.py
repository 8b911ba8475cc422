"""The render step: source bytes and options in, encoded thumbnail out.

``render`` runs in a worker thread, never on the event loop. It is an ordered list of
small steps over one image::

    open (header only, limits) → orientation → output kind → plan → draft (JPEG DCT scaling)
    → decode → normalise mode → [smart focus] → resize (premultiplied alpha) → orient
    → to sRGB (ICC / CMYK, on the small image) → pad → flatten → encode (no metadata)

The plan is in upright pixels (after EXIF orientation), but the decoded image is resampled as
stored, over the plan's region mapped back through the orientation, and only the small result is
turned upright: a rotation of the full decode costs as much as a tenth of the render.

A YCbCr JPEG headed for a format that keeps chroma at half resolution (JPEG 4:2:0, WebP, AVIF)
is decoded as YCbCr and never converted: luma is resampled with LANCZOS at the output size,
chroma at half of it, and the JPEG encoder takes the planes as they are. Luma is where the
detail is; resampling one plane instead of three halves the resize, and the encoder would
throw the extra chroma resolution away.

An animation runs the per-frame steps on every frame and is encoded whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from PIL import ExifTags, Image

from thumbsvc import animation, color, smartcrop
from thumbsvc.decode import Limits, open_image, pillow_errors
from thumbsvc.encoding import ALPHA_FORMATS, encode, encode_animation, negotiate, output_kind
from thumbsvc.errors import BadRequest, SourceTooLarge
from thumbsvc.geometry import GeometryError, Plan, plan, stored_box
from thumbsvc.options import RenderOptions

__all__ = ["Limits", "Rendered", "read_orientation", "render", "upright_size"]

# Decode JPEGs at the smallest DCT scale (1/2, 1/4, 1/8) that still leaves at least this
# many source pixels per output pixel for the final resample. Measured (bench/proposals.md,
# P2): 1/2 keeps luma PSNR within 0.4 dB of a full decode down to 1.3 px left; 1/4 and 1/8
# need 2 (1/8 is a DC-only decode, a box filter).
DRAFT_MIN_RATIO = {8: 2.0, 4: 2.0, 2: 1.3}
REDUCING_GAP = 3.0
# Chroma planes are box-reduced by the whole part of ratio / CHROMA_REDUCING_GAP, then resampled
# to half the output size with CHROMA_FILTER.
CHROMA_REDUCING_GAP = 1.25
CHROMA_FILTER = Image.Resampling.BICUBIC

# Output kinds whose encoders keep chroma at half resolution in both directions.
SUBSAMPLED_KINDS = frozenset({"jpeg", "webp", "avif"})
# Adobe APP14 transform 0: the three components are R, G, B, not Y, Cb, Cr.
ADOBE_RGB_TRANSFORM = 0
RGB_COMPONENT_IDS = (ord("R"), ord("G"), ord("B"))

# Bump whenever a change to the pipeline changes its output: it is part of every ETag.
RENDER_VERSION = "7"

_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True, slots=True)
class Rendered:
    data: bytes
    media_type: str
    width: int
    height: int
    frames: int = 1


@dataclass(frozen=True, slots=True)
class Job:
    """What every frame of one render shares."""

    options: RenderOptions
    kind: str
    upright: tuple[int, int]
    orientation: int
    icc_profile: bytes | None
    # Decoded pixels per source pixel: 1/2, 1/4 or 1/8 after JPEG DCT scaling. Exact: the decoder
    # pads the last block, so a decoded image is ceil(size * scale) wide but its grid is size * scale.
    scale: float = 1.0


def render(data: bytes, options: RenderOptions, limits: Limits, accept: str | None = None) -> Rendered:
    """Given source bytes and options, return the encoded thumbnail.

    Raise ``BadRequest`` when the options cannot apply to this image (crop box outside
    it, output too large) and the decode errors of ``decode.open_image``.
    """
    image, job, layout = open_job(data, options, limits, accept)
    with pillow_errors():
        if animation.is_animated(image) and job.kind in animation.ANIMATED_KINDS:
            return render_animation(image, job, layout, limits)
        scale = draft(image, layout, planar=decodes_planar(image, job.kind))
        job = replace(job, scale=scale)
        image.load()
        frame = prepare(image, job)
    return render_decoded(frame, job, layout, limits)


def open_job(
    data: bytes, options: RenderOptions, limits: Limits, accept: str | None = None
) -> tuple[Image.Image, Job, Plan]:
    """The steps of ``render`` before any pixel is decoded: open the header, choose the output kind, plan.

    Return the opened (not yet drafted or decoded) image, the job and the plan. Raise as ``render``.
    """
    image = open_image(data, limits)
    with pillow_errors():
        orientation = read_orientation(image)
        upright = upright_size(image.size, orientation)
        kind = output_kind(
            options.format,
            image.format,
            negotiate(accept) if options.format == "auto" else "",
            color.has_alpha(image),
        )
        icc = image.info.get("icc_profile")
        job = Job(options, kind, upright, orientation, icc if isinstance(icc, bytes) else None)
        layout = make_plan(upright, options, limits)
    return image, job, layout


def render_decoded(frame: Image.Image, job: Job, layout: Plan, limits: Limits) -> Rendered:
    """The steps of ``render`` after the decode: from ``prepare``'s output (at ``job.scale``) to the thumbnail.

    ``frame`` is never modified, so one decoded frame can serve several renders (``thumbsvc.decoded``).
    """
    with pillow_errors():
        layout = smart_plan(frame, job, layout, limits)
        out = finish(frame, job, layout)
        # The encoder sets attributes on the image it saves: never hand it a frame others may share.
        body, media_type = encode(out.copy() if out is frame else out, job.kind, job.options.quality)
    return Rendered(body, media_type, out.width, out.height)


def render_animation(image: Image.Image, job: Job, layout: Plan, limits: Limits) -> Rendered:
    """Render every frame with one plan (smart focus from the first frame) and encode them together.

    Raise ``SourceTooLarge`` before decoding if the output frames would exceed the animation
    pixel budget (an upscaled or padded canvas can be far larger than the source).
    """
    frames_out = len(animation.frame_indices(image))
    canvas_w, canvas_h = layout.canvas
    if frames_out * canvas_w * canvas_h > limits.max_animation_pixels:
        raise SourceTooLarge(
            f"{frames_out} frames of {canvas_w}x{canvas_h} is over the animation budget",
            public_message="Animation too large for this output size",
        )
    plays = animation.source_plays(image)
    frames: list[Image.Image] = []
    durations: list[int] = []
    for index, source in enumerate(animation.read_frames(image)):
        frame = prepare(source.image, job)
        if index == 0:
            layout = smart_plan(frame, job, layout, limits)
        frame = finish(frame, job, layout)
        # Steps that change nothing hand back the opened image itself, which the next seek overwrites.
        frames.append(frame.copy() if frame is source.image else frame)
        durations.append(source.duration_ms)
    body, media_type = encode_animation(frames, durations, job.kind, job.options.quality, plays)
    return Rendered(body, media_type, frames[0].width, frames[0].height, len(frames))


def prepare(image: Image.Image, job: Job) -> Image.Image:
    """Decoded pixels (still in stored orientation) in a working mode (L, LA, RGB, RGBA, CMYK)."""
    return color.normalise_mode(image)


def finish(image: Image.Image, job: Job, layout: Plan) -> Image.Image:
    """A decoded working image to the output's pixels: resize, orient, sRGB, pad, flatten."""
    image = orient(resize(image, layout, job), job.orientation)
    image = color.to_srgb(image, job.icc_profile)
    image = pad(image, layout, job.options, job.kind)
    image = flatten(image, job.options, job.kind)
    # Only the JPEG encoder takes YCbCr as it is.
    return image.convert("RGB") if image.mode == "YCbCr" and job.kind != "jpeg" else image


def make_plan(
    upright: tuple[int, int], options: RenderOptions, limits: Limits, focus: tuple[float, float] | None = None
) -> Plan:
    try:
        return plan(upright, options, max_output_px=limits.max_output_px, focus=focus)
    except GeometryError as exc:
        raise BadRequest(str(exc), public_message=f"Options do not fit the image: {exc}") from exc


def smart_plan(image: Image.Image, job: Job, layout: Plan, limits: Limits) -> Plan:
    """For ``gravity=smart`` on a cover crop, re-plan around the subject of the decoded image."""
    options = job.options
    region = layout.region
    whole = options.crop or (0, 0, *job.upright)
    if options.gravity != "smart" or options.fit != "cover":
        return layout
    if math.isclose(region[2] - region[0], whole[2]) and math.isclose(region[3] - region[1], whole[3]):
        return layout  # the crop takes the whole region: nothing to choose
    left, top, width, height = whole
    box = decoded_box(image, (left, top, left + width, top + height), job)
    aspect = layout.size[0] / layout.size[1]
    focus = smartcrop.focus_point(image, box, aspect, _TRANSPOSE.get(job.orientation))
    return make_plan(job.upright, options, limits, focus=focus)


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
    if image.format not in ("JPEG", "MPO") or image.mode != "RGB":
        return False
    if "jfif" in image.info:
        return True
    if "adobe" in image.info:
        return image.info.get("adobe_transform") != ADOBE_RGB_TRANSFORM
    layers = getattr(image, "layer", [])
    return tuple(layer[0] for layer in layers) != RGB_COMPONENT_IDS


def decodes_planar(image: Image.Image, kind: str) -> bool:
    """True when the source is decoded as YCbCr planes for this output kind (see the module docstring)."""
    return kind in SUBSAMPLED_KINDS and codes_ycbcr(image)


def draft(image: Image.Image, layout: Plan, *, planar: bool = False) -> float:
    """Let the JPEG decoder scale by 1/2, 1/4 or 1/8 while leaving DRAFT_MIN_RATIO for the resample,
    and with ``planar`` hand over YCbCr instead of converting to RGB. Return the scale it will decode at."""
    if image.format not in ("JPEG", "MPO"):
        return 1.0
    ratio = 1.0 / layout.scale  # source pixels per output pixel
    denominator = next((d for d, min_ratio in DRAFT_MIN_RATIO.items() if ratio / d >= min_ratio), 1)
    return draft_at(image, denominator, planar=planar)


def draft_at(image: Image.Image, denominator: int, *, planar: bool = False) -> float:
    """Let the JPEG decoder scale by 1/``denominator`` (and with ``planar`` hand over YCbCr); return the scale."""
    if denominator == 1 and not planar:
        return 1.0
    width, height = image.size
    # Pillow picks the largest scale whose result is at least the size asked for.
    size = (max(1, width // denominator), max(1, height // denominator)) if denominator > 1 else None
    drafted = image.draft("YCbCr" if planar else image.mode, size)
    # Pillow answers with the source's extent in decoded pixels: (0, 0, width / scale, height / scale).
    return drafted[1][2] / width if drafted is not None else 1.0


def orient(image: Image.Image, orientation: int) -> Image.Image:
    method = _TRANSPOSE.get(orientation)
    return image.transpose(method) if method is not None else image


def decoded_box(
    image: Image.Image, region: tuple[float, float, float, float], job: Job
) -> tuple[float, float, float, float]:
    """Given a region in upright source pixels, return it in the pixels of the decoded, stored image.

    The decoded image may be DCT-scaled (``draft``, ``job.scale``) and is not yet turned upright.
    """
    scale = job.scale
    left, top, right, bottom = region
    src_w, src_h = job.upright
    return stored_box(
        (left * scale, top * scale, right * scale, bottom * scale), (src_w * scale, src_h * scale), job.orientation
    )


def resize(image: Image.Image, layout: Plan, job: Job) -> Image.Image:
    """Resample the plan's region of the stored image to its size (in stored orientation), in
    premultiplied alpha so edges get no dark halo."""
    box = decoded_box(image, layout.region, job)
    size = upright_size(layout.size, job.orientation)
    if box == (0, 0, image.width, image.height) and size == image.size:
        return image
    if image.mode == "YCbCr":
        return resize_planar(image, size, box)
    premultiplied = {"RGBA": "RGBa", "LA": "La"}.get(image.mode)
    if premultiplied:
        image = image.convert(premultiplied)
    image = image.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=REDUCING_GAP)
    if premultiplied:
        image = image.convert("RGBA" if premultiplied == "RGBa" else "LA")
    return image


def resize_planar(image: Image.Image, size: tuple[int, int], box: tuple[float, float, float, float]) -> Image.Image:
    """Resample luma with LANCZOS to ``size`` and chroma to half of it (every encoder this path
    serves keeps chroma at half resolution), then double each chroma sample, which the encoder's
    2x2 averaging turns back into exactly that sample."""
    # One plane at a time, so no more than one full-size plane exists beside the decoded image.
    luma = image.getchannel(0).resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=REDUCING_GAP)
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
    planes = []
    for band in (1, 2):
        plane = image.getchannel(band)
        plane = extend_edges(plane.reduce(factor) if factor != (1, 1) else plane, chroma_box)
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
