"""Quality of a thumbnail: luma PSNR and SSIM against a full-decode LANCZOS reference of the same geometry.

The reference decodes the whole source (no DCT scaling), applies EXIF orientation, converts an
embedded ICC profile to sRGB, and resamples the ideal source region (a float box: centred crop
for ``cover``, the whole image for ``contain``) straight to the output's size with LANCZOS.
Luma is BT.601 (0.299 R + 0.587 G + 0.114 B) on the 8-bit sRGB values, as in most published
thumbnailer comparisons. SSIM is Wang et al. (2004): 11x11 Gaussian window, sigma 1.5,
K1 = 0.01, K2 = 0.03, mean of the SSIM map over the valid region.
"""

from __future__ import annotations

import io
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image, ImageCms, ImageOps

from bench.lib.photos import source_box

PSNR_CAP_DB = 99.0


@lru_cache(maxsize=2)
def upright_source(path: str) -> Image.Image:
    """Return the full-size, upright, sRGB RGB image of ``path`` (cached: references share it)."""
    with Image.open(path) as opened:
        opened.load()
        icc = opened.info.get("icc_profile")
        image = ImageOps.exif_transpose(opened)
    if image.mode == "CMYK" or image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    if icc:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if image.mode == "RGB" and source.profile.xcolor_space.strip() == "RGB":
            srgb = ImageCms.createProfile("sRGB")
            image = ImageCms.profileToProfile(image, source, srgb, outputMode="RGB")  # type: ignore[assignment]
    return image.convert("RGB")


def reference(path: str, out_w: int, out_h: int, fit: str, shift: tuple[float, float] = (0.0, 0.0)) -> Image.Image:
    """Return the ideal ``fit`` thumbnail of ``path`` at exactly ``out_w`` x ``out_h``.

    ``shift`` moves a ``cover`` crop by that many output pixels (x, y).
    """
    source = upright_source(path)
    left, top, right, bottom = source_box(source.width, source.height, out_w, out_h, fit)
    scale = (right - left) / out_w
    dx = min(max(shift[0] * scale, -left), source.width - right)
    dy = min(max(shift[1] * scale, -top), source.height - bottom)
    box = (left + dx, top + dy, right + dx, bottom + dy)
    return source.resize((out_w, out_h), Image.Resampling.LANCZOS, box=box)


def chroma_psnr(a: Image.Image, b: Image.Image) -> float:
    """Mean PSNR of the Cb and Cr planes (JPEG's full-range BT.601 YCbCr) of two RGB images."""
    planes_a = np.asarray(a.convert("YCbCr"), dtype=np.float64)
    planes_b = np.asarray(b.convert("YCbCr"), dtype=np.float64)
    return (psnr(planes_a[..., 1], planes_b[..., 1]) + psnr(planes_a[..., 2], planes_b[..., 2])) / 2


def luma(image: Image.Image) -> np.ndarray:
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64)
    weighted: np.ndarray = rgb @ np.array([0.299, 0.587, 0.114])
    return weighted


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    if mse == 0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, 10.0 * float(np.log10(255.0**2 / mse)))


def _gaussian(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - size // 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    normalised: np.ndarray = g / g.sum()
    return normalised


def _blur(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    # Separable 'valid' Gaussian filter: rows, then columns.
    rows = sliding_window_view(x, len(g), axis=0) @ g
    blurred: np.ndarray = sliding_window_view(rows, len(g), axis=1) @ g
    return blurred


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    g = _gaussian()
    if min(a.shape) < len(g):
        return 1.0 if np.array_equal(a, b) else 0.0
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = _blur(a, g), _blur(b, g)
    var_a = _blur(a * a, g) - mu_a**2
    var_b = _blur(b * b, g) - mu_b**2
    cov = _blur(a * b, g) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))


CROP_SHIFTS = (-0.5, 0.0, 0.5)


def measure(path: str, fit: str, output: bytes) -> dict[str, Any]:
    """Return PSNR/SSIM of an encoded thumbnail against the reference of its own size.

    ``psnr_strict``/``ssim_strict`` compare with the ideal centred crop. A ``cover`` thumbnail
    whose crop was rounded to whole pixels of a shrunk image (libvips does this) is shifted by up
    to half an output pixel, which costs up to ~30 dB on detailed images without being visible;
    ``psnr``/``ssim`` therefore compare with the best of the references shifted by -0.5, 0 or
    +0.5 output pixels on each axis, so they measure resampling quality, not the centring rule.
    ``psnr_chroma`` is the mean PSNR of the Cb and Cr planes against that same reference.
    """
    with Image.open(io.BytesIO(output)) as decoded:
        decoded.load()
        thumb = decoded.convert("RGB")
    y_thumb = luma(thumb)
    shifts = [(0.0, 0.0)]
    if fit == "cover":
        source = upright_source(path)
        left, top, right, bottom = source_box(source.width, source.height, thumb.width, thumb.height, fit)
        xs = CROP_SHIFTS if right - left < source.width - 1e-6 else (0.0,)
        ys = CROP_SHIFTS if bottom - top < source.height - 1e-6 else (0.0,)
        shifts = [(dx, dy) for dx in xs for dy in ys]
    scores = {}
    references = {}
    for shift in shifts:
        references[shift] = reference(path, thumb.width, thumb.height, fit, shift)
        y_ref = luma(references[shift])
        scores[shift] = (psnr(y_thumb, y_ref), y_ref)
    best = max(scores, key=lambda k: scores[k][0])
    strict_psnr, strict_ref = scores[(0.0, 0.0)]
    return {
        "psnr": round(scores[best][0], 3),
        "psnr_chroma": round(chroma_psnr(thumb, references[best]), 3),
        "ssim": round(ssim(y_thumb, scores[best][1]), 5),
        "psnr_strict": round(strict_psnr, 3),
        "ssim_strict": round(ssim(y_thumb, strict_ref), 5),
        "shift": list(best),
    }
