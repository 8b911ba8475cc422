"""JavaScript's ``Math.cos`` and ``Math.round``, bit for bit, for ports of JavaScript reference code.

V8 (Node 20 and the browsers of its time) computes ``Math.cos`` with a C++ port of fdlibm
(Sun's freely distributable libm): ``__ieee754_rem_pio2`` reduces the argument to
[-pi/4, pi/4] and ``__kernel_cos``/``__kernel_sin`` evaluate fixed polynomials. glibc's
``cos``, which Python's ``math.cos`` calls, is a different algorithm: the two disagree in the
last bit for a few percent of arguments, which is enough to flip a quantised value. This is
the same fdlibm arithmetic, written over Python floats (IEEE doubles, round to nearest, no
fused multiply-add), for arguments up to 2**19 * pi/2; larger ones would need fdlibm's
multi-word reduction (``__kernel_rem_pio2``) and raise ``ValueError``.

``Math.round`` rounds halves up (``Math.round(2.5) == 3``, ``Math.round(-2.5) == -2``)
where Python's ``round`` rounds them to even.
"""

from __future__ import annotations

import math
import struct

__all__ = ["js_cos", "js_round"]

_PACK = struct.Struct("<d")
_WORDS = struct.Struct("<II")  # low word, high word of a little-endian double

# __ieee754_rem_pio2: 53 bits of 2/pi, pi/2 split in 33-bit pieces and their tails.
_INVPIO2 = 6.36619772367581382433e-01  # 0x3FE45F30, 0x6DC9C883
_PIO2_1 = 1.57079632673412561417e00  # 0x3FF921FB, 0x54400000
_PIO2_1T = 6.07710050650619224932e-11  # 0x3DD0B461, 0x1A626331
_PIO2_2 = 6.07710050630396597660e-11  # 0x3DD0B461, 0x1A600000
_PIO2_2T = 2.02226624879595063154e-21  # 0x3BA3198A, 0x2E037073
_PIO2_3 = 2.02226624871116645580e-21  # 0x3BA3198A, 0x2E000000
_PIO2_3T = 8.47842766036889956997e-32  # 0x397B839A, 0x252049C1
# High words of n * pi/2 for n = 1..32: an argument this close to one may lose bits to cancellation.
_NPIO2_HW = (
    0x3FF921FB, 0x400921FB, 0x4012D97C, 0x401921FB, 0x401F6A7A, 0x4022D97C, 0x4025FDBB, 0x402921FB,
    0x402C463A, 0x402F6A7A, 0x4031475C, 0x4032D97C, 0x40346B9C, 0x4035FDBB, 0x40378FDB, 0x403921FB,
    0x403AB41B, 0x403C463A, 0x403DD85A, 0x403F6A7A, 0x40407E4C, 0x4041475C, 0x4042106C, 0x4042D97C,
    0x4043A28C, 0x40446B9C, 0x404534AC, 0x4045FDBB, 0x4046C6CB, 0x40478FDB, 0x404858EB, 0x404921FB,
)  # fmt: skip

# __kernel_cos and __kernel_sin: minimax polynomials on [-pi/4, pi/4].
_C1 = 4.16666666666666019037e-02  # 0x3FA55555, 0x5555554C
_C2 = -1.38888888888741095749e-03  # 0xBF56C16C, 0x16C15177
_C3 = 2.48015872894767294178e-05  # 0x3EFA01A0, 0x19CB1590
_C4 = -2.75573143513906633035e-07  # 0xBE927E4F, 0x809C52AD
_C5 = 2.08757232129817482790e-09  # 0x3E21EE9E, 0xBDB4B1C4
_C6 = -1.13596475577881948265e-11  # 0xBDA8FAE9, 0xBE8838D4
_S1 = -1.66666666666666324348e-01  # 0xBFC55555, 0x55555549
_S2 = 8.33333333332248946124e-03  # 0x3F811111, 0x1110F8A6
_S3 = -1.98412698298579493134e-04  # 0xBF2A01A0, 0x19C161D5
_S4 = 2.75573137070700676789e-06  # 0x3EC71DE3, 0x57B1FE7D
_S5 = -2.50507602534068634195e-08  # 0xBE5AE5E6, 0x8A2B9CEB
_S6 = 1.58969099521155010221e-10  # 0x3DE5D93A, 0x5ACFD57C


def js_round(x: float) -> int:
    """Given a finite number, return ``Math.round(x)``: the nearest integer, halves towards +infinity.

    ``x - floor(x)`` is exact for every double, so the comparison with 0.5 is too
    (``floor(x + 0.5)`` is not: it rounds 0.49999999999999994 up).
    """
    floor = math.floor(x)
    return floor + 1 if x - floor >= 0.5 else floor


def js_cos(x: float) -> float:
    """Return ``Math.cos(x)`` as V8's fdlibm computes it.

    Raise ``ValueError`` for ``|x|`` over 2**19 * pi/2, outside the reduction ported here.
    """
    high = _high_word(x) & 0x7FFFFFFF
    if high <= 0x3FE921FB:  # |x| <= pi/4: no reduction
        return _kernel_cos(x, 0.0)
    if high >= 0x7FF00000:  # infinity or NaN
        return x - x
    n, y0, y1 = _rem_pio2(x)
    quadrant = n & 3
    if quadrant == 0:
        return _kernel_cos(y0, y1)
    if quadrant == 1:
        return -_kernel_sin(y0, y1)
    if quadrant == 2:
        return -_kernel_cos(y0, y1)
    return _kernel_sin(y0, y1)


def _high_word(x: float) -> int:
    high: int = _WORDS.unpack(_PACK.pack(x))[1]
    return high


def _from_words(high: int, low: int) -> float:
    return float(_PACK.unpack(_WORDS.pack(low, high))[0])


def _rem_pio2(x: float) -> tuple[int, float, float]:
    """fdlibm ``__ieee754_rem_pio2``: return n and y0 + y1 = x - n * pi/2 with |y0 + y1| <= pi/4 (about)."""
    hx = _high_word(x)
    ix = hx & 0x7FFFFFFF
    negative = hx >= 0x80000000
    if ix < 0x4002D97C:  # |x| < 3pi/4: n is +-1
        if not negative:
            z = x - _PIO2_1
            if ix != 0x3FF921FB:  # 33 + 53 bits of pi are enough
                y0 = z - _PIO2_1T
                return 1, y0, (z - y0) - _PIO2_1T
            z -= _PIO2_2  # near pi/2: 33 + 33 + 53 bits
            y0 = z - _PIO2_2T
            return 1, y0, (z - y0) - _PIO2_2T
        z = x + _PIO2_1
        if ix != 0x3FF921FB:
            y0 = z + _PIO2_1T
            return -1, y0, (z - y0) + _PIO2_1T
        z += _PIO2_2
        y0 = z + _PIO2_2T
        return -1, y0, (z - y0) + _PIO2_2T
    if ix > 0x413921FB:
        raise ValueError(f"js_cos supports |x| <= 2**19 * pi/2, not {x!r}")
    t = abs(x)
    n = int(t * _INVPIO2 + 0.5)  # C's (int32_t) cast truncates
    fn = float(n)
    r = t - fn * _PIO2_1
    w = fn * _PIO2_1T  # first round, good to 85 bits
    if n < 32 and ix != _NPIO2_HW[n - 1]:
        y0 = r - w  # no cancellation possible
    else:
        exponent = ix >> 20
        y0 = r - w
        if exponent - ((_high_word(y0) >> 20) & 0x7FF) > 16:  # second round, good to 118 bits
            t = r
            w = fn * _PIO2_2
            r = t - w
            w = fn * _PIO2_2T - ((t - r) - w)
            y0 = r - w
            if exponent - ((_high_word(y0) >> 20) & 0x7FF) > 49:  # third round, 151 bits
                t = r
                w = fn * _PIO2_3
                r = t - w
                w = fn * _PIO2_3T - ((t - r) - w)
                y0 = r - w
    y1 = (r - y0) - w
    if negative:
        return -n, -y0, -y1
    return n, y0, y1


def _kernel_cos(x: float, y: float) -> float:
    """fdlibm ``__kernel_cos``: cos(x + y) for |x| <= pi/4, y the tail of x."""
    ix = _high_word(x) & 0x7FFFFFFF
    if ix < 0x3E400000:  # |x| < 2**-27
        return 1.0
    z = x * x
    r = z * (_C1 + z * (_C2 + z * (_C3 + z * (_C4 + z * (_C5 + z * _C6)))))
    if ix < 0x3FD33333:  # |x| < 0.3
        return 1.0 - (0.5 * z - (z * r - x * y))
    # 1 - qx and z/2 - qx are exact, and the latter is at least a quarter of z/2.
    qx = 0.28125 if ix > 0x3FE90000 else _from_words(ix - 0x00200000, 0)
    iz = 0.5 * z - qx
    a = 1.0 - qx
    return a - (iz - (z * r - x * y))


def _kernel_sin(x: float, y: float) -> float:
    """fdlibm ``__kernel_sin`` with a tail (iy = 1): sin(x + y) for |x| <= pi/4."""
    ix = _high_word(x) & 0x7FFFFFFF
    if ix < 0x3E400000:  # |x| < 2**-27
        return x
    z = x * x
    v = z * x
    r = _S2 + z * (_S3 + z * (_S4 + z * (_S5 + z * _S6)))
    return x - ((z * (0.5 * y - v * r) - y) - v * _S1)
