"""``gravity=smart``: find where the subject is, so a cover crop keeps it in frame.

The region to crop is reduced to a thumbnail of at most ``ANALYSIS_PX`` on its long
side and scored per pixel (a saliency map): edge energy (detail, text, faces), skin
tones and colour saturation, which separate a subject from sky, walls, studio
backdrops and blurred backgrounds. A cover crop only ever slides along one axis, so
the map is projected onto that axis and the window of the crop's width with the most
saliency wins; a mild pull towards the centre breaks ties, so a featureless image
stays centred. The work is on a few thousand pixels: well under a millisecond or
two, against tens of milliseconds for the decode (bench/smartcrop.py measures it).
"""

from __future__ import annotations

from PIL import Image, ImageChops, ImageFilter, ImageStat

ANALYSIS_PX = 128
# The orientations that turn a stored image on its side.
SWAPS_AXES = frozenset(
    {Image.Transpose.TRANSPOSE, Image.Transpose.TRANSVERSE, Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270}
)
# How much of the score a window at the very edge gives up against one in the centre.
CENTRE_PULL = 0.15
EDGE_WEIGHT, SKIN_WEIGHT, SATURATION_WEIGHT = 1.0, 0.4, 0.4
# Skin tones in YCbCr (a narrowed Chai & Ngan box, so golden walls and sand count less).
SKIN_CB, SKIN_CR = (85, 125), (137, 165)
_SKIN_CB_LUT = tuple(255 if SKIN_CB[0] <= v <= SKIN_CB[1] else 0 for v in range(256))
_SKIN_CR_LUT = tuple(255 if SKIN_CR[0] <= v <= SKIN_CR[1] else 0 for v in range(256))


def focus_point(
    image: Image.Image,
    region: tuple[float, float, float, float],
    aspect: float,
    transpose: Image.Transpose | None = None,
) -> tuple[float, float]:
    """Given an image, the region a cover crop is cut from and the crop's aspect (w/h, upright),
    return the focal point as fractions (x, y) of the upright region, for ``geometry.plan(focus=...)``.

    ``image`` and ``region`` may be in the stored orientation of an EXIF-oriented source;
    ``transpose`` then turns them upright (only the small analysis sample is turned).
    """
    left, top, right, bottom = region
    reg_w, reg_h = right - left, bottom - top
    scale = min(1.0, ANALYSIS_PX / max(reg_w, reg_h))
    size = (max(1, round(reg_w * scale)), max(1, round(reg_h * scale)))
    # Averaging a decoded photo costs ~1 ms a megapixel: point-sample to 4x the analysis size
    # first (a statistical map does not mind the aliasing), then average.
    sampled = image.resize((4 * size[0], 4 * size[1]), Image.Resampling.NEAREST, box=region)
    small = sampled.reduce(4)
    if transpose is not None:
        small = small.transpose(transpose)
        if transpose in SWAPS_AXES:
            reg_w, reg_h = reg_h, reg_w
    saliency = saliency_map(small)
    if reg_w / reg_h > aspect:  # wider than the crop: slide horizontally
        window = reg_h * aspect / reg_w
        return best_window(profile(saliency, horizontal=True), window), 0.5
    window = reg_w / aspect / reg_h
    return 0.5, best_window(profile(saliency, horizontal=False), window)


def saliency_map(image: Image.Image) -> Image.Image:
    """Return an L image, brighter where a viewer's eye goes."""
    rgb = image.convert("RGB")
    grey = rgb.convert("L")
    edges = blank_rim(grey.filter(ImageFilter.FIND_EDGES)).filter(ImageFilter.BoxBlur(1))
    _, cb, cr = rgb.convert("YCbCr").split()
    skin = ImageChops.multiply(cb.point(_SKIN_CB_LUT), cr.point(_SKIN_CR_LUT))
    saturation = rgb.convert("HSV").getchannel("S")
    total = _weighted(edges, EDGE_WEIGHT)
    total = ImageChops.add(total, _weighted(skin, SKIN_WEIGHT))
    return ImageChops.add(total, _weighted(saturation, SATURATION_WEIGHT))


def blank_rim(edges: Image.Image) -> Image.Image:
    """Return the edge map with a one-pixel rim set to 0 (all of it when it is two pixels thin or less).

    The filter sees the frame's border as an edge. A source of extreme aspect ratio
    (1x65535) leaves an analysis sample one or two pixels thin, which has no inside.
    """
    width, height = edges.size
    blank = Image.new("L", edges.size, 0)
    if width > 2 and height > 2:
        blank.paste(edges.crop((1, 1, width - 1, height - 1)), (1, 1))
    return blank


def profile(saliency: Image.Image, *, horizontal: bool) -> list[float]:
    """Project the map onto one axis: the mean saliency of each column (or row)."""
    line = saliency.reduce((1, saliency.height) if horizontal else (saliency.width, 1))
    return [float(value) for value in line.tobytes()]


def best_window(values: list[float], window: float) -> float:
    """Return the centre (0-1) of the ``window``-wide span (a fraction of the line) with the most saliency."""
    count = len(values)
    span = max(1, min(count, round(window * count)))
    if span >= count:
        return 0.5
    sums = [0.0]
    for value in values:
        sums.append(sums[-1] + value)
    free = count - span
    scores = []
    for start in range(free + 1):
        offset = abs(start - free / 2) / (free / 2)
        scores.append((sums[start + span] - sums[start] + 1e-3) * (1.0 - CENTRE_PULL * offset))
    best = max(scores)
    # Ties (a flat profile, an odd number of free places) go to the middle of the tied places
    # nearest the centre, so a mirrored picture gets the mirrored window.
    tied = [start for start, score in enumerate(scores) if score >= best * (1 - 1e-9)]
    nearest = min(abs(start - free / 2) for start in tied)
    central = [start for start in tied if abs(start - free / 2) == nearest]
    return (sum(central) / len(central) + span / 2) / count


def _weighted(channel: Image.Image, weight: float) -> Image.Image:
    """Scale a feature by its weight, counting only what stands out from its own mean.

    A wall of saturated yellow or a frame full of foliage is then no subject; a red
    coat on grey, or the detailed thing in front of a blurred background, is.
    """
    mean = Image.new("L", channel.size, round(ImageStat.Stat(channel).mean[0]))
    return ImageChops.subtract(channel, mean, scale=1 / weight)  # (v - mean) * weight, clipped at 0
