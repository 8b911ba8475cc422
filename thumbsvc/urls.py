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
S3_SCHEME = "s3://"
# S3's bucket naming rules: 3-63 lower-case letters, digits, '.' and '-', a letter or digit at each end
# ('_' too, which GCS's S3 interface and legacy buckets use).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]")
MAX_S3_KEY_BYTES = 1024
# Sources that are URLs (the loaders' schemes); anything else is a path under the media root.
_URL_PREFIXES = ("http://", "https://", "s3://")
# Segments that make a second path to the same file: empty (``a//b``, a trailing ``/``), ``.`` and ``..``.
_ALIAS_SEGMENTS = frozenset({"", ".", ".."})


def is_bucket_name(name: str) -> bool:
    """Given a name, return whether it is a bucket name an ``s3://`` source may use."""
    return bool(_BUCKET.fullmatch(name)) and ".." not in name


def split_s3_source(source: str) -> tuple[str, str]:
    """Given an ``s3://bucket/key`` source, return the bucket and the key, the key exactly as given.

    Raise ValueError for a scheme not in lower case, a bad bucket name, an empty key, a key over 1024
    bytes, or a key with an empty, ``.`` or ``..`` segment: S3 stores such keys as they are, but
    other stores and tools resolve them, so a prefix rule on them proves nothing. The messages
    never repeat the bucket or the key.
    """
    if not source.startswith(S3_SCHEME):
        raise ValueError("an S3 source starts with 's3://' in lower case")
    bucket, slash, key = source[len(S3_SCHEME) :].partition("/")
    if not is_bucket_name(bucket):
        raise ValueError("an S3 source needs a valid bucket name")
    if not slash or not key:
        raise ValueError("an S3 source needs a key after the bucket")
    if any(segment in ("", ".", "..") for segment in key.split("/")):
        raise ValueError("an S3 key may not have empty, '.' or '..' segments")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_S3_KEY_BYTES:
        raise ValueError(f"an S3 key has at most {MAX_S3_KEY_BYTES} bytes")
    return bucket, key


def encode_source(source: str) -> str:
    """Given a source (relative path or absolute URL), return its canonical path text.

    Raise ValueError for an empty source and for a media-root path with empty, ``.`` or ``..``
    segments (a leading ``/`` is left to the loader, which refuses absolute paths).
    """
    if not source:
        raise ValueError("source must not be empty")
    if source[: len(S3_SCHEME)].lower() == S3_SCHEME:
        split_s3_source(source)  # no URL is signed (or accepted) for an object the loader would refuse
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
