"""thumbor's URLs: recognise them, verify their signature and parse their grammar. Pure, no I/O.

A thumbor path is ``/<signature|unsafe>/<options>/<image>``::

    /<signature|unsafe>/[trim[:top-left|:bottom-right][:tolerance]/][AxB:CxD/]
        [adaptive-][full-]fit-in/][-]Wx[-]H/[left|center|right/][top|middle|bottom/][smart/]
        [filters:name(args):name(args)…/]<image>

The signature is thumbor's: URL-safe base64 (with its padding, 28 characters) of an HMAC-SHA1
over the path after the signature segment, exactly as it arrived. thumbsvc's own signatures are
43 characters without padding, so the first segment alone tells the two grammars apart. CDNs
re-encode some characters of a path (thumbor#1338), so the path is also tried once with
``%28 %29 %2C %3A %7E %3D`` decoded; either spelling is the same thumbnail.

``parse_path`` returns a ``ThumborPath``: the grammar's elements, bounded here (every size and
number has a ceiling before any work); ``thumbsvc.thumbor_filters`` maps it onto the pipeline.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote

SIGNATURE_LENGTH = 28  # base64 of the 20 bytes of an HMAC-SHA1, with one '=' of padding
UNSAFE = "unsafe"
# The characters CDNs and proxies percent-encode in a path, decoded once before a second try.
_REENCODED = re.compile(r"%(28|29|2C|3A|7E|3D)", re.IGNORECASE)
_SIGNATURE = re.compile(r"[A-Za-z0-9_-]{27}(?:=|%3[Dd])")
# The ceiling of any number in a path: longer digit runs are refused before they are converted.
MAX_DIGITS = 6
MAX_FILTERS = 32
CORNERS = ("top-left", "bottom-right")
HALIGNS = {"left": 0.0, "center": 0.5, "right": 1.0}
VALIGNS = {"top": 0.0, "middle": 0.5, "bottom": 1.0}
ORIG = -1  # the size "orig": the source's own side

_GRAMMAR = re.compile(
    r"(?:(?P<meta>meta|debug)/)?"
    r"(?:(?P<trim>trim(?::(?:top-left|bottom-right))?(?::\d+)?)/)?"
    r"(?:(?P<crop>\d+x\d+:\d+x\d+)/)?"
    r"(?:(?P<fit>(?:adaptive-)?(?:full-)?fit-in)/)?"
    r"(?:(?P<hflip>-)?(?P<width>\d+|orig)?x(?P<vflip>-)?(?P<height>\d+|orig)?/)?"
    r"(?:(?P<halign>left|right|center)/)?"
    r"(?:(?P<valign>top|bottom|middle)/)?"
    r"(?:(?P<smart>smart)/)?"
    r"(?:filters:(?P<filters>.+?\))/)?"
    r"(?P<image>.+)",
    re.DOTALL,
)
_FILTER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\((.*)\)", re.DOTALL)


class ThumborPathError(ValueError):
    """The path is not a thumbor URL thumbsvc serves; the message is short and public."""


@dataclass(frozen=True, slots=True)
class Filter:
    name: str
    args: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ThumborPath:
    """The elements of a thumbor path (after its signature), every number bounded."""

    trim: tuple[str, int] | None = None  # (reference corner, tolerance)
    crop: tuple[int, int, int, int] | None = None  # left, top, right, bottom in upright source pixels
    fit_in: bool = False
    full: bool = False
    adaptive: bool = False
    width: int = 0  # 0: from the other side (or the source's), ORIG: the source's own
    height: int = 0
    flip_h: bool = False  # a negative width
    flip_v: bool = False  # a negative height
    halign: str = "center"
    valign: str = "middle"
    smart: bool = False
    filters: tuple[Filter, ...] = ()
    image: str = ""


class ThumborSigner:
    """thumbor's URL signature (HMAC-SHA1, URL-safe base64 with padding) with rotating keys.

    ``keys`` is newest first, as in ``THUMBSVC_THUMBOR_KEY=new,old``: the first signs, all verify.
    """

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys or any(not key for key in keys):
            raise ValueError("at least one non-empty key is needed")
        self._keys = tuple(key.encode("utf-8") for key in keys)

    def sign(self, path: str) -> str:
        """Given the path after the signature segment, return its signature (as libthumbor writes it)."""
        return _signature(self._keys[0], path)

    def verify(self, path: str, signature: str) -> bool:
        """Return whether ``signature`` was made for ``path`` by one of the keys.

        Every key is tried and each comparison takes the same time whatever the bytes: the answer
        tells nothing of how close a guess came, nor which key matched.
        """
        given = signature.encode("ascii", "replace")
        valid = False
        for key in self._keys:
            valid |= hmac.compare_digest(_signature(key, path).encode("ascii"), given)
        return valid


def _signature(key: bytes, path: str) -> str:
    digest = hmac.new(key, path.encode("utf-8"), hashlib.sha1).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")


def split_signature(raw_path: str) -> tuple[str, str] | None:
    """Given a raw request path, return (signature or ``unsafe``, the rest) when it is shaped like a
    thumbor path, else None: a 28-character padded signature (its ``=`` may arrive as ``%3D``) or
    ``unsafe`` as the first segment, and something after it."""
    first, sep, rest = raw_path.removeprefix("/").partition("/")
    if not sep or not rest:
        return None
    if first == UNSAFE:
        return first, rest
    if _SIGNATURE.fullmatch(first):
        return first[:27] + "=", rest
    return None


def reencoded_variant(path: str) -> str:
    """Given a raw path, return it with the characters CDNs re-encode decoded (thumbor#1338)."""
    return _REENCODED.sub(lambda match: bytes.fromhex(match.group(1)).decode("ascii"), path)


def parse_path(path: str) -> ThumborPath:
    """Given the (verified) path after the signature, return its elements.

    Raise ``ThumborPathError`` for what thumbsvc does not serve (``meta``, ``debug``), a number over
    ``MAX_DIGITS`` digits, too many filters or an image part that is not UTF-8.
    """
    match = _GRAMMAR.fullmatch(path)
    if match is None:  # pragma: no cover - the image part takes any non-empty rest
        raise ThumborPathError("Malformed thumbor URL")
    if match["meta"]:
        raise ThumborPathError(f"thumbor's {match['meta']} output is not supported")
    try:
        image = unquote(match["image"], encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise ThumborPathError("The image part is not UTF-8") from None
    fit = match["fit"] or ""
    return ThumborPath(
        trim=_trim(match["trim"]),
        crop=_crop(match["crop"]),
        fit_in=bool(fit),
        full="full-" in fit,
        adaptive=fit.startswith("adaptive-"),
        width=_side(match["width"]),
        height=_side(match["height"]),
        flip_h=bool(match["hflip"]),
        flip_v=bool(match["vflip"]),
        halign=match["halign"] or "center",
        valign=match["valign"] or "middle",
        smart=bool(match["smart"]),
        filters=_filters(match["filters"] or ""),
        image=image,
    )


def number(text: str) -> int:
    """Given digits from a path, return their value; raise ``ThumborPathError`` past ``MAX_DIGITS``."""
    if len(text) > MAX_DIGITS:
        raise ThumborPathError(f"Number too large in thumbor URL: {text[:12]}")
    return int(text)


def _side(text: str | None) -> int:
    if text is None:
        return 0
    return ORIG if text == "orig" else number(text)


def _trim(text: str | None) -> tuple[str, int] | None:
    if text is None:
        return None
    parts = text.split(":")[1:]
    # thumbor reads the second part as the corner whatever it holds, and compares it with
    # "top-left": "trim:10" trims from the bottom-right corner with tolerance 0 there.
    corner = "top-left" if not parts or parts[0] == "top-left" else "bottom-right"
    tolerance = number(parts[1]) if len(parts) > 1 else 0
    return corner, tolerance


def _crop(text: str | None) -> tuple[int, int, int, int] | None:
    if text is None:
        return None
    left, top, right, bottom = (number(value) for value in re.split(r"[x:]", text))
    if not (left or top or right or bottom):
        return None  # thumbor: an all-zero box is no crop
    return left, top, right, bottom


def _filters(text: str) -> tuple[Filter, ...]:
    """``name(args):name(args)`` as thumbor splits it (on ``):``); chunks that are not a call are skipped."""
    if not text:
        return ()
    chunks = text.split("):")
    if len(chunks) > MAX_FILTERS:
        raise ThumborPathError(f"At most {MAX_FILTERS} filters")
    found = []
    for index, chunk in enumerate(chunks):
        call = _FILTER.fullmatch(chunk if index == len(chunks) - 1 else chunk + ")")
        if call is None:
            continue
        args = call.group(2).strip()
        found.append(Filter(call.group(1), tuple(_unquote_arg(arg.strip()) for arg in args.split(",")) if args else ()))
    return tuple(found)


def _unquote_arg(arg: str) -> str:
    return arg[1:-1] if len(arg) > 1 and arg[0] == arg[-1] == "'" else arg
