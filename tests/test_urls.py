from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
    "//double//slashes//",
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


@given(st.text(min_size=1, max_size=60))
def test_any_source_string_round_trips(source: str) -> None:
    try:
        encoded = encode_source(source)
    except UnicodeEncodeError:
        return  # lone surrogates cannot be UTF-8: the client refuses them too
    assert decode_source(encoded) == source
    assert ":" not in encoded and "," not in encoded and " " not in encoded
