"""What one render holds in memory, estimated from the source's header, and the budget that bounds it.

``MemoryBudget`` keeps the sum of the estimates of the renders running at once within
``THUMBSVC_RENDER_MEMORY_BUDGET``: a render waits, first come first served and within its queue
deadline, until it fits beside those running. A render whose estimate is over the hard ceiling
(``THUMBSVC_MAX_RENDER_MEMORY``) is refused with 413 before anything is decoded (the service
checks it after the pipeline's header steps). ``release_freed_memory`` hands what glibc keeps
after a large render back to the kernel (when the process is idle: ``Admission.trim_when_idle``).

The estimate (``render_bytes``) follows where the bytes go (docs/operations.md, "Memory"); each
figure was measured as the peak resident-set growth of one render in a fresh process, and
``tests/test_memory.py`` checks the estimate against real renders. A render has two phases; its
peak is the larger of them, plus what a decoder keeps for as long as the image is open:

- **decode**: the decoded image at the DCT scale (Pillow stores every 3- and 4-band mode in
  4 bytes a pixel), beside what the decoder holds while it runs: a progressive JPEG keeps every
  DCT coefficient of the whole image (128 bytes per 8x8 block of each component: 3 bytes a
  pixel for 4:2:0, 4 for 4:2:2, 6 for 4:4:4) whatever the scale; libwebp's animation decoder,
  which Pillow uses for every WebP, keeps two canvas-sized RGBA buffers for as long as the image
  is open and hands over a copy of each frame; libavif holds the YUV planes and an RGB copy.
- **resample**: the decoded image, a working copy (a palette or 16-bit image converted to 8-bit
  RGB or L; RGBA premultiplied; one plane of a YCbCr decode), the box reduction and the first pass
  of the two-pass resample (output width x decoded height), and the output canvas with its
  converted copies and the encoder's buffers (WebP's are the largest, with alpha most of all).

An animation decodes one frame at a time at full size, but keeps every output frame until the
encoder has them all: ``frames x canvas x KEPT_FRAME_BYTES`` more. Figures are slight
over-estimates by design (0-40 % above the measured peaks, up to 60 % for animations): a budget
that under-counted would not bound anything.

This module reads headers only; it knows nothing of the pipeline (which calls it from its plan
step) or of admission (which holds a ``MemoryBudget``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import anyio
from PIL import Image

from thumbsvc.color import has_alpha
from thumbsvc.decode import frame_count
from thumbsvc.geometry import REDUCING_GAP

__all__ = [
    "Header",
    "MemoryBudget",
    "coefficient_bytes",
    "read_header",
    "release_freed_memory",
    "render_bytes",
    "stored_bytes",
]

JPEG_FORMATS = frozenset({"JPEG", "MPO"})
# Pillow's storage per pixel; every mode not listed takes 4 bytes (RGB included).
_STORED_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
# Modes the pipeline works in; anything else is converted first (color.normalise_mode).
WORKING_MODES = frozenset({"L", "LA", "RGB", "RGBA", "CMYK", "YCbCr"})
COEFFICIENT_BLOCK_BYTES = 128  # 64 DCT coefficients of 2 bytes
FULL_SCALE = 8  # a JPEG decoded at full size: DCT scales are counted in eighths of the source
# Per source pixel, beside the decoded image.
WEBP_DECODER_BYTES = 8  # two RGBA canvases, alive while the image is open
WEBP_FRAME_COPY_BYTES = 5  # the frame handed over as ``bytes`` while Pillow copies it in; lossless: more
AVIF_DECODER_BYTES = 6  # YUV planes (1.5-3 bytes) and libavif's RGB copy (4)
GIF_DECODER_BYTES = 8  # an animated GIF's previous frame and disposal canvas
# Per output pixel: the canvas and one converted copy; the encoders' buffers come on top.
OUTPUT_BYTES = {"webp": 12, "avif": 16}
OUTPUT_ALPHA_BYTES = {"webp": 28, "avif": 16}
DEFAULT_OUTPUT_BYTES = 8
KEPT_FRAME_BYTES = 7  # per pixel of every output frame of an animation, encoder included
FIXED_BYTES = 3_000_000  # decoder and encoder state, row buffers, objects
# After a render estimated at this many bytes or more, freed heap pages go back to the kernel once idle.
TRIM_MIN_BYTES = 64_000_000


@dataclass(frozen=True, slots=True)
class Header:
    """What the estimate needs from a source's header."""

    format: str  # Pillow's format name: JPEG, MPO, PNG, GIF, WEBP, AVIF, HEIF
    size: tuple[int, int]  # as stored (before EXIF orientation), at full scale
    mode: str  # what the decoder produces
    alpha: bool = False
    progressive: bool = False  # JPEG: every coefficient is buffered
    sampling: tuple[tuple[int, int], ...] = ()  # JPEG: (horizontal, vertical) sampling factors per component
    frames: int = 1


def read_header(image: Image.Image, size: tuple[int, int] | None = None) -> Header:
    """Given an opened (not decoded) image, return its ``Header``.

    ``size`` is the full stored size, for an image a JPEG draft has already scaled.
    """
    jpeg = image.format in JPEG_FORMATS
    layers = getattr(image, "layer", []) if jpeg else []
    return Header(
        format=image.format or "",
        size=size or image.size,
        mode=image.mode,
        alpha=has_alpha(image),
        progressive=jpeg and bool(image.info.get("progressive")),
        sampling=tuple((int(layer[1]), int(layer[2])) for layer in layers),
        frames=frame_count(image),
    )


def stored_bytes(mode: str) -> int:
    """Bytes Pillow stores per pixel of ``mode``."""
    return _STORED_BYTES.get(mode, 4)


def coefficient_bytes(header: Header) -> int:
    """The whole-image DCT coefficient buffer of a progressive JPEG (0 for any other source)."""
    if header.format not in JPEG_FORMATS or not header.progressive:
        return 0
    width, height = header.size
    sampling = header.sampling or ((1, 1),)
    max_h = max(h for h, _ in sampling)
    max_v = max(v for _, v in sampling)
    blocks = sum(_ceil(_ceil(width * h, max_h), 8) * _ceil(_ceil(height * v, max_v), 8) for h, v in sampling)
    return blocks * COEFFICIENT_BLOCK_BYTES


def render_bytes(
    header: Header,
    *,
    eighths: int = FULL_SCALE,
    size: tuple[int, int] | None = None,
    canvas: tuple[int, int] | None = None,
    kind: str = "jpeg",
    planar: bool = False,
    frames: int = 1,
    decodes: bool = True,
    trim: bool = False,
    copies: int = 0,
) -> int:
    """Return the estimated peak bytes of one render.

    ``eighths``: the JPEG DCT scale it decodes at, in eighths of the source (1-4 or 8; ignored for other formats).
    ``size``: what the decoded image is resampled to, in stored orientation (default: not resampled).
    ``canvas``: the output size (default: ``size``). ``kind``: the output format. ``planar``: a
    JPEG decoded as YCbCr planes. ``frames``: output frames kept at once (an animation's count).
    ``decodes``: False for a render from a frame decoded at ``eighths`` and held elsewhere (the
    decoded-source cache, which counts it in its own byte bound): no decoder state is charged.
    ``trim``: the render looks for borders (a preview and, for modes it cannot compare, a converted
    copy). ``copies``: output-sized copies made by the filters (blur, sharpen, gray, watermark).
    """
    width, height = header.size
    eighths = eighths if header.format in JPEG_FORMATS else FULL_SCALE
    decoded_w, decoded_h = _ceil(width * eighths, FULL_SCALE), _ceil(height * eighths, FULL_SCALE)
    decoded_px = decoded_w * decoded_h
    mode = "YCbCr" if planar else header.mode
    decoded = decoded_px * stored_bytes(mode)
    source_px = width * height

    resident = transient = 0  # decoder state: for as long as the image is open / during the decode
    if not decodes:
        pass
    elif header.format == "WEBP":
        resident = WEBP_DECODER_BYTES * source_px
        transient = WEBP_FRAME_COPY_BYTES * source_px
    elif header.format in ("AVIF", "HEIF"):
        transient = AVIF_DECODER_BYTES * source_px
    elif header.format == "GIF" and header.frames > 1:
        resident = GIF_DECODER_BYTES * source_px
    else:
        transient = coefficient_bytes(header)

    converted = mode not in WORKING_MODES or (header.alpha and mode in ("L", "RGB"))
    working = decoded_px * 4 if converted else 0
    size = size or (decoded_w, decoded_h)
    if size != (decoded_w, decoded_h):
        plane = 1 if planar or (mode == "L" and not converted) else 4
        if planar:
            working += decoded_px  # the luma plane, taken out to be resampled
        elif header.alpha:
            working += decoded_px * 4  # the premultiplied copy resize makes
        factor_x = max(1, int(decoded_w / size[0] / REDUCING_GAP))
        factor_y = max(1, int(decoded_h / size[1] / REDUCING_GAP))
        if factor_x * factor_y > 1:
            working += _ceil(decoded_w, factor_x) * _ceil(decoded_h, factor_y) * plane
        working += size[0] * _ceil(decoded_h, factor_y) * plane
    if trim:
        working += decoded_px * (4 if mode not in ("L", "LA", "RGB", "RGBA") else 0) + decoded_px // 4
    canvas = canvas or size
    working += canvas[0] * canvas[1] * 4 * copies
    alpha = header.alpha and kind in ("png", "webp", "avif", "gif")
    per_pixel = (OUTPUT_ALPHA_BYTES if alpha else OUTPUT_BYTES).get(kind, DEFAULT_OUTPUT_BYTES)
    output = canvas[0] * canvas[1] * per_pixel
    kept = frames * canvas[0] * canvas[1] * KEPT_FRAME_BYTES if frames > 1 else 0
    return FIXED_BYTES + resident + kept + max(decoded + transient, decoded + working + output)


class MemoryBudget:
    """The estimated bytes of the renders running at once in one process, and the renders waiting for a share.

    ``limit_bytes`` of 0 turns the budget off. A render waits, first come first served, until
    its estimate fits beside the renders running; while none runs, any render fits (the hard
    ceiling, checked before a render is admitted, bounds how large that one can be).
    """

    def __init__(self, limit_bytes: int, *, trim_min_bytes: int = TRIM_MIN_BYTES) -> None:
        self.limit_bytes = limit_bytes
        self.trim_min_bytes = trim_min_bytes
        self.untrimmed = False  # a large render has freed heap since the last release_freed_memory
        self.in_use = 0
        self._waiters: deque[tuple[int, anyio.Event]] = deque()

    @property
    def enabled(self) -> bool:
        return self.limit_bytes > 0

    async def reserve(self, nbytes: int) -> None:
        """Wait until ``nbytes`` fit and take them; a cancelled waiter takes nothing."""
        if not self.enabled or nbytes <= 0:
            return
        if not self._waiters and self._fits(nbytes):
            self.in_use += nbytes
            return
        waiter = (nbytes, anyio.Event())
        self._waiters.append(waiter)
        try:
            await waiter[1].wait()
        except BaseException:
            if waiter[1].is_set():  # granted just as we were cancelled: hand it back
                self.release(nbytes)
            else:
                self._waiters.remove(waiter)
                self._grant()
            raise

    def release(self, nbytes: int) -> None:
        if not self.enabled or nbytes <= 0:
            return
        self.in_use -= nbytes
        self._grant()

    def rendered(self, nbytes: int) -> None:
        """Note that a render estimated at ``nbytes`` has finished: a large one leaves hundreds of MB of
        freed heap, for ``Admission.trim_when_idle`` to hand back once the process is idle."""
        if nbytes >= self.trim_min_bytes:
            self.untrimmed = True

    def _grant(self) -> None:
        while self._waiters and self._fits(self._waiters[0][0]):
            nbytes, event = self._waiters.popleft()
            self.in_use += nbytes
            event.set()

    def _fits(self, nbytes: int) -> bool:
        return self.in_use == 0 or self.in_use + nbytes <= self.limit_bytes


def _ceil(value: int, divisor: int) -> int:
    return -(-value // divisor)


# mallopt's parameter for the most malloc heaps (arenas) glibc may create.
M_ARENA_MAX = -8


@functools.cache
def _libc(name: str) -> Callable[..., int] | None:
    try:
        function: Callable[..., int] = getattr(ctypes.CDLL(ctypes.util.find_library("c")), name)
    except (OSError, AttributeError):
        return None
    return function


def share_one_heap(environ: Mapping[str, str]) -> bool:
    """Make every thread allocate from one malloc heap (glibc's ``mallopt(M_ARENA_MAX, 1)``), unless
    the environment sets ``MALLOC_ARENA_MAX`` itself; elsewhere nothing. Return whether it did.

    glibc gives each thread that allocates its own heap (up to eight per core) and keeps what a
    thread frees for that thread's next allocation: with renders on two threads a process held
    two renders' worth of freed heap. With one heap, what one render frees the next one reuses,
    whichever thread it runs on: W1 over HTTP peaked 236-248 MiB instead of 279-341, at the same
    thumbnails per core-second (docs/performance.md, "Memory").
    """
    if "MALLOC_ARENA_MAX" in environ:
        return False
    mallopt = _libc("mallopt")
    return mallopt is not None and bool(mallopt(M_ARENA_MAX, 1))


def release_freed_memory() -> None:
    """Hand the free pages of every malloc heap back to the kernel (glibc's ``malloc_trim``); elsewhere nothing.

    glibc keeps what a thread frees in that thread's heap for its next allocation, and after a
    large render that is hundreds of MB spread over several heaps (docs/performance.md, "Memory").
    """
    trim = _libc("malloc_trim")
    if trim is not None:
        trim(0)
