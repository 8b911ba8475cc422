"""Build and split thumbnail paths: ``/{signature}/{options}/{source}``.

No crypto and no I/O here. The source is percent-encoded with one fixed rule so that
any string (spaces, ``+``, ``~``, ``?``, ``#``, unicode, literal ``%41``) survives the
trip, ``:`` is always escaped (so the source never looks like an option), and ``/`` is
kept readable except where it would make an empty path segment: a leading
``/`` and every ``/`` of a run such as ``https://`` become ``%2F``.

A media-root source names a file by its path, so ``./a.jpg``, ``b/../a.jpg`` and
``a//b.jpg`` would be second URLs for one thumbnail (and browsers and HTTP clients remove
dot segments before sending, so a signed ``./a.jpg`` arrives as another path): such
sources are refused here, where both the client and the server parse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

from thumbsvc.options import RenderOptions, format_options, parse_options, split_options

# Characters left as they are in an encoded source, besides letters and digits.
_SAFE = "/-._~!$&'()*=@"
_EMPTY_SEGMENT_SLASH = re.compile(r"^/|/(?=/)|(?<=/)/")
# Sources that are URLs (the loaders' schemes); anything else is a path under the media root.
_URL_PREFIXES = ("http://", "https://", "s3://")
# Segments that make a second path to the same file: empty (``a//b``, a trailing ``/``), ``.`` and ``..``.
_ALIAS_SEGMENTS = frozenset({"", ".", ".."})


def encode_source(source: str) -> str:
    """Given a source (relative path or absolute URL), return its canonical path text.

    Raise ValueError for an empty source and for a media-root path with empty, ``.`` or ``..``
    segments (a leading ``/`` is left to the loader, which refuses absolute paths).
    """
    if not source:
        raise ValueError("source must not be empty")
    if not source.lower().startswith(_URL_PREFIXES) and _ALIAS_SEGMENTS.intersection(source.lstrip("/").split("/")):
        raise ValueError("a media-root source may not have empty, '.' or '..' path segments")
    encoded = quote(source, safe=_SAFE, encoding="utf-8", errors="strict")
    return _EMPTY_SEGMENT_SLASH.sub("%2F", encoded)


def decode_source(text: str) -> str:
    """Given the source part of a path, return the source; raise ValueError if not canonical."""
    try:
        source = unquote(text, encoding="utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise ValueError("source is not valid UTF-8") from exc
    if not source or encode_source(source) != text:
        raise ValueError("source is not in its canonical encoding")
    return source


def build_payload(options: RenderOptions, source: str) -> str:
    """Return the signed part of a thumbnail path: ``{options}/{source}``."""
    return f"{format_options(options)}/{encode_source(source)}"


@dataclass(frozen=True, slots=True)
class ThumbPath:
    signature: str
    payload: str  # exactly the bytes the signature covers
    options: RenderOptions
    source: str


def split_path(path: str) -> ThumbPath:
    """Given a raw request path (still percent-encoded), return its parts.

    Raise ``ValueError`` if the path is not a canonical thumbnail path.
    """
    if not path.startswith("/"):
        raise ValueError("path must start with '/'")
    signature, sep, payload = path[1:].partition("/")
    if not sep or not signature:
        raise ValueError("path has no signature segment")
    option_segments, source_segments = split_options(payload.split("/"))
    if not source_segments:
        raise ValueError("path has no source")
    options = parse_options(option_segments)
    source = decode_source("/".join(source_segments))
    return ThumbPath(signature=signature, payload=payload, options=options, source=source)
