"""The render pipeline: source bytes in, encoded thumbnail out, as a list of steps over one job.

A ``Job`` holds what one render knows; each step is a small function that reads it and fills
in the next part, and ``run`` hands the job from step to step, checking the render deadline
between them (a render past its deadline is abandoned at the next step: ``RenderTimeout``)::

    probe    open the header under the limits: format, size, orientation, profile, output kind
    plan     the geometry (geometry.plan) and the decode rule (decode_scale); the memory estimate
    ---- nothing above decodes a pixel: every 4xx of the options and the header is raised here ----
    decode   decode at the planned JPEG DCT scale, into a working mode (or take a decoded frame given)
    trim     trim:  find the box without uniform borders (on the decode: at least 1600 px on its long
             side, or the source's own size) and plan again inside it
    reduce   box-reduce the decoded frame to this request's own scale (decode_scale's second half)
    focus    gravity=smart: re-plan a cover crop around the subject of the decoded pixels
    resize   resample the plan's region to the output size, still in stored orientation
    orient   apply the EXIF orientation, rot and flip (one transform) to the small result
    colour   convert to sRGB through the embedded ICC profile (CMYK through a fallback profile)
    adjust   blur:, sharp: on the output-sized image
    compose  pad onto the canvas, flatten alpha for formats without it
    gray     gray: luminance, alpha kept
    turn     another grammar's turns after resizing (thumbor's flips and rotate())
    mark     wm: the operator's named watermark
    encode   write the output format, no metadata (f:json: the facts of the output and its ThumbHash)

An animation runs ``decode`` and the per-frame steps on every frame (``animate``) and is encoded
whole; the deadline is checked between frames too.

The plan is in upright pixels (after EXIF orientation), but the decoded image is resampled as
stored, over the plan's region mapped back through the orientation, and only the small result is
turned upright: a rotation of the full decode costs as much as a tenth of the render.

A YCbCr JPEG headed for a format that keeps chroma at half resolution (JPEG 4:2:0, WebP, AVIF)
is decoded as YCbCr and never converted: luma is resampled with LANCZOS at the output size,
chroma at half of it, and the JPEG encoder takes the planes as they are. Luma is where the
detail is; resampling one plane instead of three halves the resize, and the encoder would
throw the extra chroma resolution away.

The decoded frame (``Decoded``) is never modified by the steps after it, so one decode can
serve several requests (the service's decoded-source cache hands it to ``Job.decoded``); which
scale is decoded depends only on the source and the request (``decode_scale``), so a thumbnail
is byte-identical whether its frame came from a cache or from its own decode.
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from PIL import Image

from thumbsvc import animation, color, filters, memory, placeholders, smartcrop
from thumbsvc.decode import Limits, open_image, pillow_errors
from thumbsvc.encoding import SOURCE_KINDS, encode, encode_animation, output_kind
from thumbsvc.errors import BadRequest, RenderTimeout, SourceTooLarge
from thumbsvc.geometry import (
    FLIPS,
    ORIENTATIONS,
    REDUCING_GAP,
    ROTATIONS,
    GeometryError,
    Plan,
    Planner,
    stored_box,
    transform_box,
    with_rotation,
)
from thumbsvc.geometry import (
    compose as compose_transforms,
)
from thumbsvc.geometry import plan as plan_geometry
from thumbsvc.options import RenderOptions
from thumbsvc.pixels import (
    TRANSPOSE,
    codes_ycbcr,
    draft_at,
    flatten,
    frame_bytes,
    pad,
    read_orientation,
    resize_planar,
    upright_size,
)

__all__ = [
    "HEADER_STEPS",
    "Decoded",
    "Job",
    "Rendered",
    "decode_scale",
    "pixel_steps",
    "read_orientation",
    "render",
    "run",
    "upright_size",
]

# JPEG DCT scales below full size (memory.FULL_SCALE, 8/8), in eighths of the source, coarsest first:
# libjpeg-turbo decodes at any M/8, these are the ones a thumbnail needs.
SCALES = (1, 2, 3, 4)
# Decode JPEGs at the coarsest DCT scale that still leaves at least this many decoded pixels per
# output pixel for the final resample. Measured (docs/decisions.md): 4/8 keeps luma PSNR within
# 0.4 dB of a full decode down to 1.3 px left; 3/8 has the same bound (on W1 its outputs are within
# 0.5 dB of 4/8's, "Session 5"); 2/8 and 1/8 need 2 (1/8 is a DC-only decode, a box filter).
DRAFT_MIN_RATIO = {1: 2.0, 2: 2.0, 3: 1.3, 4: 1.3}
# A large JPEG is decoded at most this coarsely: the coarsest DCT scale that keeps this many pixels
# on the long edge (enough, by the rule above, for outputs up to about 1200 px). Smaller outputs
# box-reduce that decode by an integer factor, so the sizes of one photo a gallery page asks for
# at once can share one decode (docs/performance.md measures the rule).
MIN_SHARED_EDGE_PX = 1600

# Output kinds whose encoders keep chroma at half resolution in both directions.
SUBSAMPLED_KINDS = frozenset({"jpeg", "webp", "avif"})

# f:json works on a preview of the output at most this big (ThumbHash's input), from the coarsest decode
# that still gives it.
FACTS_PREVIEW_PX = 100

# Bump whenever a change to the pipeline changes its output: it is part of every ETag.
RENDER_VERSION = "10"


@dataclass(frozen=True, slots=True)
class Rendered:
    data: bytes
    media_type: str
    width: int
    height: int
    frames: int = 1


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded still, in a working mode and stored orientation, at ``eighths``/8 of the source; never modified."""

    frame: Image.Image
    eighths: int  # the DCT scale it was decoded at (decode_scale)
    scale: float  # decoded pixels per source pixel, exactly (the decoder pads its last block)
    nbytes: int  # what holding it costs


@dataclass(slots=True)
class Job:
    """One render's state. The caller fills the first block; the steps fill the rest, in order."""

    data: bytes
    options: RenderOptions
    limits: Limits
    auto_format: str = ""  # what ``f:auto`` negotiated ("avif", "webp"), or "": the source's kind
    deadline: float = math.inf  # a ``time.monotonic()`` value; past it the render is abandoned
    decoded: Decoded | None = None  # a decoded frame handed in (the service's decoded cache), or decode's own
    watermarks: Mapping[str, filters.Watermark] = field(default_factory=dict, repr=False)  # the operator's
    planner: Planner | None = None  # another grammar's geometry (thumbor's) in place of geometry.plan

    # probe
    image: Image.Image | None = field(default=None, repr=False)
    header: memory.Header | None = None
    exif_orientation: int = 1  # the source's own
    orientation: int = 1  # EXIF orientation, then rot and flip: the one transform the result is turned by
    icc_profile: bytes | None = field(default=None, repr=False)
    kind: str = ""  # output format (f:json: the format the image would have, whose facts are given)
    facts: bool = False  # f:json: answer the facts of the output and its ThumbHash, from a small preview
    animated: bool = False
    # plan
    layout: Plan | None = None  # the geometry the steps work to (f:json: the output's, shrunk to a preview)
    output_plan: Plan | None = None  # the output's own geometry
    base: tuple[int, int, int, int] | None = None  # what trim kept, in upright pixels (left, top, width, height)
    eighths: int = memory.FULL_SCALE  # JPEG DCT scale of the decode, in eighths of the source: 1, 2, 3, 4 or 8
    factor: int = 1  # then box-reduced by this factor, to the request's own scale
    planar: bool = False  # decoded as YCbCr planes (see the module docstring)
    decode_bytes: int = 0  # memory estimate of the whole render
    finish_bytes: int = 0  # ... of the steps after the decode, from a frame held elsewhere
    # decode and the per-frame steps
    scale: float = 1.0  # pixels of ``pixels`` per source pixel, before the resize
    pixels: Image.Image | None = field(default=None, repr=False)
    frames: list[Image.Image] = field(default_factory=list, repr=False)
    durations_ms: list[int] = field(default_factory=list)
    # encode
    rendered: Rendered | None = None

    @property
    def opened(self) -> Image.Image:
        assert self.image is not None, "probe has not run"
        return self.image

    @property
    def plan(self) -> Plan:
        assert self.layout is not None, "plan has not run"
        return self.layout

    @property
    def picture(self) -> Image.Image:
        assert self.pixels is not None, "decode has not run"
        return self.pixels

    @property
    def upright(self) -> tuple[int, int]:
        assert self.header is not None, "probe has not run"
        return upright_size(self.header.size, self.orientation)

    @property
    def shares_decode(self) -> bool:
        """True when the decoded frame may serve other requests (a still, decoded once)."""
        return not self.animated

    @property
    def result(self) -> Rendered:
        assert self.rendered is not None, "encode has not run"
        return self.rendered

    def check_deadline(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderTimeout("render deadline passed")


Step = Callable[[Job], None]


def run(job: Job, steps: Sequence[Step]) -> Job:
    """Run ``steps`` over ``job`` in order, checking the render deadline before each; return the job.

    Raise ``RenderTimeout`` once the deadline has passed, and whatever a step raises (errors.py).
    """
    for step in steps:
        job.check_deadline()
        step(job)
    return job


def render(
    data: bytes, options: RenderOptions, limits: Limits, *, auto_format: str = "", timeout_s: float | None = None
) -> Rendered:
    """Given source bytes and options, return the encoded thumbnail: every step, in this thread.

    Raise ``BadRequest`` when the options cannot apply to this image (crop box outside it,
    output too large), the decode errors of ``decode.open_image`` and ``RenderTimeout``.
    """
    deadline = math.inf if timeout_s is None else time.monotonic() + timeout_s
    job = run(Job(data, options, limits, auto_format=auto_format, deadline=deadline), HEADER_STEPS)
    return run(job, pixel_steps(job)).result


# ---- header steps: nothing is decoded ----


def probe(job: Job) -> None:
    """Open the header under the limits and read what the render needs from it."""
    image = job.image = open_image(job.data, job.limits)
    with pillow_errors():
        job.exif_orientation = read_orientation(image)
        job.orientation = with_rotation(job.exif_orientation, job.options.rotate, job.options.flip)
        job.header = memory.read_header(image)
        job.facts = job.options.format == "json"
        requested = None if job.facts else job.options.format
        job.kind = output_kind(requested, image.format, job.auto_format, color.has_alpha(image))
        icc = image.info.get("icc_profile")
        job.icc_profile = icc if isinstance(icc, bytes) else None
        job.animated = animation.is_animated(image) and job.kind in animation.ANIMATED_KINDS and not job.facts


def plan(job: Job) -> None:
    """Plan the geometry and the decode scale; estimate the render's memory from them."""
    options = job.options
    if options.watermark is not None and options.watermark not in job.watermarks:
        raise BadRequest(f"no watermark {options.watermark!r}", public_message="Unknown watermark")
    set_plan(job, layout_of(job))
    header = job.header
    assert header is not None
    if job.animated:
        frames = len(animation.frame_indices(job.opened))
        canvas_w, canvas_h = job.plan.canvas
        if frames * canvas_w * canvas_h > job.limits.max_animation_pixels:
            raise SourceTooLarge(
                f"{frames} frames of {canvas_w}x{canvas_h} is over the animation budget",
                public_message="Animation too large for this output size",
            )
    else:
        frames = 1
        # trim compares colours in RGB: its source is decoded as RGB, not as YCbCr planes.
        job.planar = job.kind in SUBSAMPLED_KINDS and codes_ycbcr(job.opened) and options.trim is None
        if options.trim is not None:
            # The box is found on the decode the image itself gets (so f:json's output size is the image's),
            # before any reduction; trim then sets the factor for what it kept.
            assert job.output_plan is not None
            job.eighths, job.factor = decode_scale(header, job.output_plan)[0], 1
        elif job.facts:  # the coarsest decode that gives the preview: it shares nothing worth a finer one
            job.eighths, job.factor = own_scale(header, job.plan), 1
        else:
            job.eighths, job.factor = decode_scale(header, job.plan)
    size = upright_size(job.plan.size, job.orientation)
    copies = sum(
        1 for wanted in (options.blur, options.sharpen, options.watermark, options.grayscale or None) if wanted
    )

    def estimate(eighths: int, *, decodes: bool) -> int:
        return memory.render_bytes(
            header,
            eighths=eighths,
            size=size,
            canvas=job.plan.canvas,
            kind=job.kind,
            planar=job.planar,
            frames=frames,
            decodes=decodes,
            trim=options.trim is not None,
            copies=copies,
        )

    job.decode_bytes = estimate(job.eighths, decodes=True)
    job.finish_bytes = estimate(job.eighths // job.factor, decodes=False)


def set_plan(job: Job, layout: Plan) -> None:
    """Make ``layout`` the job's geometry: as it is, or for f:json the output's, worked to a small preview."""
    job.output_plan = layout
    if not job.facts:
        job.layout = layout
        return
    canvas_w, canvas_h = layout.canvas
    scale = min(1.0, FACTS_PREVIEW_PX / max(canvas_w, canvas_h))

    def shrink(value: int) -> int:
        return max(1, round(value * scale))

    size = (shrink(layout.size[0]), shrink(layout.size[1]))
    canvas = (shrink(canvas_w), shrink(canvas_h))
    offset = (
        min(round(layout.offset[0] * scale), canvas[0] - size[0]),
        min(round(layout.offset[1] * scale), canvas[1] - size[1]),
    )
    job.layout = Plan(layout.region, size, canvas, offset)


def geometry_options(job: Job) -> RenderOptions:
    """The options with the crop box turned by rot and flip: the plan is in the pixels of the result's
    orientation, while a URL's crop box is in the pixels of the image after its EXIF orientation
    (and inside what trim kept)."""
    options = job.options
    if options.crop is None or (not options.rotate and options.flip is None):
        return options
    turn = compose_transforms(ROTATIONS[options.rotate], FLIPS[options.flip])
    left, top, width, height = options.crop
    if job.base is not None:
        width_kept, height_kept = job.base[2:]
        frame = (height_kept, width_kept) if turn[0] == 0 else (width_kept, height_kept)  # before the turn
    else:
        frame = upright_size(job.opened.size, job.exif_orientation)
    box = transform_box((left, top, left + width, top + height), frame, turn)
    crop = (round(box[0]), round(box[1]), round(box[2] - box[0]), round(box[3] - box[1]))
    return replace(options, crop=crop)


def layout_of(
    job: Job, *, focus: tuple[float, float] | None = None, base: tuple[int, int, int, int] | None = None
) -> Plan:
    """The job's plan: ``geometry.plan`` over its options, or the planner it carries (thumbor's).

    Raise ``BadRequest`` when the options cannot apply to the image.
    """
    if job.planner is None:
        return make_plan(job.upright, geometry_options(job), job.limits, focus=focus, base=base)
    try:
        return job.planner.plan(job.upright, max_output_px=job.limits.max_output_px, focus=focus, base=base)
    except GeometryError as exc:
        raise BadRequest(str(exc), public_message=f"Options do not fit the image: {exc}") from exc


HEADER_STEPS: tuple[Step, ...] = (probe, plan)


def decode_scale(header: memory.Header, layout: Plan) -> tuple[int, int]:
    """The one decode rule: given the source header and the plan, return ``(eighths, factor)``:
    decode a JPEG at ``eighths``/8 of its size, then box-reduce by ``factor``.

    The request's own scale (``own_scale``) is the coarsest DCT scale that leaves
    ``DRAFT_MIN_RATIO`` decoded pixels per output pixel. A large JPEG is decoded no coarser than the
    shared scale (the coarsest that keeps ``MIN_SHARED_EDGE_PX`` on the long edge) and box-reduced
    towards its own from there by the largest whole factor that stays at or above it: every size a
    gallery asks for of one photo then needs the same decode. Other formats decode at full size.
    """
    full = memory.FULL_SCALE
    own = own_scale(header, layout)
    if own == full:
        return full, 1
    long_edge = max(header.size)
    shared = next((e for e in SCALES if -(-long_edge * e // full) >= MIN_SHARED_EDGE_PX), full)
    eighths = max(own, shared) if shared < full else own
    return eighths, eighths // own


def own_scale(header: memory.Header, layout: Plan) -> int:
    """The coarsest DCT scale, in eighths, at which a JPEG still leaves ``DRAFT_MIN_RATIO`` decoded
    pixels per output pixel of ``layout``; full size (8) for other formats."""
    if header.format not in memory.JPEG_FORMATS:
        return memory.FULL_SCALE
    ratio = 1.0 / layout.scale  # source pixels per output pixel
    return next((e for e in SCALES if ratio * e / memory.FULL_SCALE >= DRAFT_MIN_RATIO[e]), memory.FULL_SCALE)


# ---- pixel steps ----


def decode(job: Job) -> None:
    """Decode the source at the planned DCT scale into a working mode, unless a decoded frame was handed in."""
    if job.decoded is None:
        image = job.opened
        with pillow_errors():
            scale = draft_at(image, job.eighths, planar=job.planar)
            image.load()
            frame = color.normalise_mode(image)
        job.decoded = Decoded(frame, job.eighths, scale, frame_bytes(frame, job.data))
    job.pixels = job.decoded.frame
    job.scale = job.decoded.scale


def trim(job: Job) -> None:
    """``trim``: find the box of what differs from the border colour and plan again inside it.

    The border colour is the given one, or the top-left pixel of the image after its EXIF
    orientation (a planner may name the bottom-right one). A uniform image is kept whole.
    """
    if job.options.trim is None or job.base is not None:
        return
    threshold, hex_ = job.options.trim
    with pillow_errors():
        image = filters.analysis_mode(job.picture)
        exif_upright = upright_size(image.size, job.exif_orientation)
        at_right, at_bottom = job.planner.trim_corner if job.planner is not None else (0, 0)
        x, y = (exif_upright[0] - 1) * at_right, (exif_upright[1] - 1) * at_bottom
        corner = stored_box((x, y, x + 1, y + 1), exif_upright, job.exif_orientation)
        colour = filters.colour_of(image, hex_, (int(corner[0]), int(corner[1])))
        box = filters.trim_box(image, threshold, colour)
    if box is None:
        return
    left, top, right, bottom = transform_box(box, image.size, ORIENTATIONS[job.orientation])
    scale = job.scale
    job.base = (round(left / scale), round(top / scale), round((right - left) / scale), round((bottom - top) / scale))
    set_plan(job, layout_of(job, base=job.base))
    if job.header is not None:
        # Reduce the decode to the scale what was kept needs, never coarser than it was decoded at.
        job.factor = max(1, job.eighths // own_scale(job.header, job.plan))


def reduce(job: Job) -> None:
    """Box-reduce the decoded frame to the request's own DCT scale (a no-op for most requests)."""
    if job.factor > 1:
        with pillow_errors():
            job.pixels = job.picture.reduce(job.factor)
        # Each reduced pixel covers ``factor`` decoded pixels a side, the last one fewer (as the DCT pads).
        job.scale /= job.factor


def focus(job: Job) -> None:
    """For ``gravity=smart`` on a cover crop, re-plan around the subject of the decoded pixels."""
    options, layout = job.options, job.plan
    if options.gravity != "smart" or options.fit != "cover":
        return
    region = layout.region
    geometry = geometry_options(job)
    base_left, base_top, *_ = job.base or (0, 0)
    if geometry.crop is not None:
        left, top, width, height = geometry.crop
        whole = (left + base_left, top + base_top, width, height)
    else:
        whole = job.base or (0, 0, *job.upright)
    if math.isclose(region[2] - region[0], whole[2]) and math.isclose(region[3] - region[1], whole[3]):
        return  # the crop takes the whole region: nothing to choose
    left, top, width, height = whole
    with pillow_errors():
        box = decoded_box((left, top, left + width, top + height), job)
        aspect = layout.size[0] / layout.size[1]
        point = smartcrop.focus_point(job.picture, box, aspect, TRANSPOSE.get(job.orientation))
    set_plan(job, layout_of(job, focus=point, base=job.base))


def resize(job: Job) -> None:
    """Resample the plan's region of the stored image to its size (in stored orientation), in
    premultiplied alpha so edges get no dark halo."""
    image = job.picture
    box = decoded_box(job.plan.region, job)
    size = upright_size(job.plan.size, job.orientation)
    if box == (0, 0, image.width, image.height) and size == image.size:
        return
    with pillow_errors():
        if image.mode == "YCbCr":
            job.pixels = resize_planar(image, size, box)
            return
        premultiplied = {"RGBA": "RGBa", "LA": "La"}.get(image.mode)
        if premultiplied:
            image = image.convert(premultiplied)
        image = image.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=REDUCING_GAP)
        if premultiplied:
            image = image.convert("RGBA" if premultiplied == "RGBa" else "LA")
    job.pixels = image


def orient(job: Job) -> None:
    """Turn the (small) result upright by its EXIF orientation."""
    method = TRANSPOSE.get(job.orientation)
    if method is not None:
        job.pixels = job.picture.transpose(method)


def colour(job: Job) -> None:
    """Convert to sRGB through the embedded profile (CMYK through the fallback press profile)."""
    with pillow_errors():
        job.pixels = color.to_srgb(job.picture, job.icc_profile)


def compose(job: Job) -> None:
    """Pad onto the canvas and flatten alpha for formats without it; end in a mode the encoder takes."""
    options = job.options
    if job.planner is not None and (fill := job.planner.fill_colour(job.picture)) is not None:
        options = replace(options, background=fill)
    image = pad(job.picture, job.plan, options, job.kind)
    image = flatten(image, options, job.kind)
    # Only the JPEG encoder takes YCbCr as it is.
    job.pixels = image.convert("RGB") if image.mode == "YCbCr" and job.kind != "jpeg" else image


def adjust(job: Job) -> None:
    """``blur``, ``sharp``: on the output-sized image, before padding (the padding stays crisp)."""
    options = job.options
    with pillow_errors():
        if options.blur is not None:
            job.pixels = filters.blur(job.picture, options.blur)
        if options.sharpen is not None:
            job.pixels = filters.sharpen(job.picture, options.sharpen)


def turn(job: Job) -> None:
    """The planner's turn of the finished result (thumbor's flips and ``rotate()``, after resizing)."""
    method = TRANSPOSE.get(job.planner.turn) if job.planner is not None else None
    if method is not None:
        with pillow_errors():
            job.pixels = job.picture.transpose(method)


def gray(job: Job) -> None:
    """``gray``: the whole output (padding too) in luminance, alpha kept."""
    if job.options.grayscale:
        with pillow_errors():
            job.pixels = filters.grayscale(job.picture)


def mark(job: Job) -> None:
    """``wm``: the operator's named watermark, over everything else."""
    if job.options.watermark is not None:
        with pillow_errors():
            job.pixels = filters.apply_watermark(job.picture, job.watermarks[job.options.watermark])


FRAME_STEPS: tuple[Step, ...] = (trim, focus, resize, orient, colour, adjust, compose, turn, gray, mark)
# Steps that run once per animation, on its first frame: the others follow that frame's plan.
FIRST_FRAME_ONLY: tuple[Step, ...] = (trim, focus)


def encode_still(job: Job) -> None:
    """Write the output format; nothing of the source's metadata is carried. f:json: the facts."""
    if job.facts:
        job.rendered = describe(job)
        return
    image = job.picture
    if job.decoded is not None and image is job.decoded.frame:
        # The encoder sets attributes on the image it saves: never hand it a frame others may share.
        image = image.copy()
    with pillow_errors():
        body, media_type = encode(image, job.kind, job.options.quality)
    job.rendered = Rendered(body, media_type, image.width, image.height)


STILL_STEPS: tuple[Step, ...] = (decode, trim, reduce, *FRAME_STEPS[1:], encode_still)


def describe(job: Job) -> Rendered:
    """f:json: the upright source's facts, the output's size and format, its average and dominant colours
    and its ThumbHash (from the preview the steps made), as JSON. Nothing else of the source (privacy)."""
    header, output = job.header, job.output_plan
    assert header is not None and output is not None
    source_w, source_h = upright_size(header.size, job.exif_orientation)
    with pillow_errors():
        width, height, rgba = placeholders.small_rgba(job.picture)
        facts = {
            "source": {
                "width": source_w,
                "height": source_h,
                "format": SOURCE_KINDS.get(header.format, header.format.lower()),
                "alpha": header.alpha,
                "frames": header.frames,
            },
            "output": {"width": output.canvas[0], "height": output.canvas[1], "format": job.kind},
            "average": placeholders.average_colour(rgba),
            "dominant": placeholders.dominant_colour(width, height, rgba),
            "thumbhash": base64.b64encode(placeholders.thumbhash(width, height, rgba)).decode("ascii"),
        }
    body = json.dumps(facts, separators=(",", ":")).encode("ascii")
    return Rendered(body, "application/json", output.canvas[0], output.canvas[1])


def animate(job: Job) -> None:
    """Run the per-frame steps on every frame of an animation (smart focus from the first frame)."""
    image = job.opened
    with pillow_errors():
        for index, source in enumerate(animation.read_frames(image)):
            job.check_deadline()
            job.pixels = color.normalise_mode(source.image)
            job.scale = 1.0
            for step in FRAME_STEPS:
                if index == 0 or step not in FIRST_FRAME_ONLY:
                    step(job)
            frame = job.picture
            # Steps that change nothing hand back the opened image itself, which the next seek overwrites.
            job.frames.append(frame.copy() if frame is source.image else frame)
            job.durations_ms.append(source.duration_ms)


def encode_frames(job: Job) -> None:
    """Write every frame as one animation, with its timing and play count."""
    plays = animation.source_plays(job.opened)
    with pillow_errors():
        body, media_type = encode_animation(job.frames, job.durations_ms, job.kind, job.options.quality, plays)
    first = job.frames[0]
    job.rendered = Rendered(body, media_type, first.width, first.height, len(job.frames))


ANIMATION_STEPS: tuple[Step, ...] = (animate, encode_frames)


def pixel_steps(job: Job) -> tuple[Step, ...]:
    """The steps after ``HEADER_STEPS`` for this job: a still's or an animation's."""
    return ANIMATION_STEPS if job.animated else STILL_STEPS


# ---- helpers ----


def make_plan(
    upright: tuple[int, int],
    options: RenderOptions,
    limits: Limits,
    focus: tuple[float, float] | None = None,
    base: tuple[int, int, int, int] | None = None,
) -> Plan:
    try:
        return plan_geometry(upright, options, max_output_px=limits.max_output_px, focus=focus, base=base)
    except GeometryError as exc:
        raise BadRequest(str(exc), public_message=f"Options do not fit the image: {exc}") from exc


def decoded_box(region: tuple[float, float, float, float], job: Job) -> tuple[float, float, float, float]:
    """Given a region in upright source pixels, return it in the pixels of ``job.pixels`` (stored, scaled)."""
    scale = job.scale
    left, top, right, bottom = region
    src_w, src_h = job.upright
    return stored_box(
        (left * scale, top * scale, right * scale, bottom * scale), (src_w * scale, src_h * scale), job.orientation
    )
