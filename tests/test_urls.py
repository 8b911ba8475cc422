from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thumbsvc.client import URLSigner
from thumbsvc.options import make_options
from thumbsvc.urls import build_payload, decode_source, encode_source, split_path

ODD_SOURCES = [
    "photos/cat.jpg",
    "with space/and+plus~tilde.jpg",
    "question?mark#hash.jpg",
    "ünïcödé/写真.jpg",
    "literal%41percent%2Fescape.jpg",
    "colon:in:name.jpg",
    "comma,semicolon;.jpg",
    "https://example.com/a/b.jpg?size=large&v=2#frag",
    "https://example.com//double//slashes//",
    "...three-dots/..hidden/.dotfile/a..b.jpg",
    "x300/looks-like-size.jpg",
    "fit:cover/looks-like-option.jpg",
]


@pytest.mark.parametrize("source", ODD_SOURCES)
def test_sources_round_trip_exactly(source: str) -> None:
    encoded = encode_source(source)
    assert decode_source(encoded) == source
    for forbidden in (",", " ", "?", "#", ":", "//"):
        assert forbidden not in encoded
    path = split_path(f"/sig/{build_payload(make_options(width=10), source)}")
    assert path.source == source
    assert path.options == make_options(width=10)


@pytest.mark.parametrize(
    "text",
    [
        "photos/cat%2Ejpg",  # needless escape
        "photos/cat%2ejpg",
        "a%20b%2bc.jpg",  # lower-case escape
        "a b.jpg",
        "a+b.jpg",
        "%FF.jpg",  # not UTF-8
        "//x.jpg",
        "",
    ],
)
def test_non_canonical_sources_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        decode_source(text)


@pytest.mark.parametrize(
    "path",
    ["", "nosig", "/", "//300x200/a.jpg", "/sig/300x200", "/sig/300x200/fit:cover", "/sig/bad/a.jpg"],
)
def test_malformed_paths_are_refused(path: str) -> None:
    with pytest.raises(ValueError):
        split_path(path)


def is_alias(source: str) -> bool:
    """A media-root path with empty, '.' or '..' segments: a second path to some file."""
    relative = not source.lower().startswith(("http://", "https://", "s3://"))
    return relative and bool({"", ".", ".."} & set(source.lstrip("/").split("/")))


@given(st.text(min_size=1, max_size=60))
def test_any_source_string_round_trips(source: str) -> None:
    try:
        encoded = encode_source(source)
    except UnicodeEncodeError:
        return  # lone surrogates cannot be UTF-8: the client refuses them too
    except ValueError:
        assert is_alias(source)
        return
    assert not is_alias(source)
    assert decode_source(encoded) == source
    assert ":" not in encoded and "," not in encoded and " " not in encoded


# One thumbnail, one URL (issue 14): browsers and httpx remove dot segments before sending, so a signed
# "./small.jpg" arrived as "small.jpg" (403), and "a/../b.jpg" or "a//b.jpg" name b.jpg under a second URL.
ALIASES = [
    "./small.jpg",
    ".",
    "..",
    "a/../b.jpg",
    "a/./b.jpg",
    "photos/..",
    "photos/.",
    "a//b.jpg",
    "photos/",
    "/./etc/passwd",
    "../secret.txt",
]


@pytest.mark.parametrize("source", ALIASES)
def test_media_root_sources_with_alias_segments_are_refused(source: str) -> None:
    with pytest.raises(ValueError, match="segments"):
        encode_source(source)
    with pytest.raises(ValueError, match="segments"):
        URLSigner(key="k").url(source, width=100)
    # The same text, signed by anyone, is no canonical source either: the server answers 400.
    text = "/".join(segment or "%2F" for segment in source.split("/"))
    with pytest.raises(ValueError):
        decode_source(text)


@pytest.mark.parametrize(
    "source",
    [
        "https://example.com/a/../b.jpg",
        "http://example.com/./a.jpg",
        "https://example.com//x",
    ],
)
def test_urls_keep_their_segments(source: str) -> None:
    # A URL's path is the origin's business; the allowlist refuses dot segments in http(s) URLs (403).
    assert decode_source(encode_source(source)) == source
