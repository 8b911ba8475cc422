"""THUMBSVC_ALLOWED_SOURCES: parsing entries and matching parsed URLs (pure, no network)."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from thumbsvc.config import ConfigError, Settings
from thumbsvc.errors import Forbidden
from thumbsvc.service import Thumbnailer
from thumbsvc.sources.allowlist import Allowlist, decode_path, normalize_host, parse_rule
from thumbsvc.sources.http import HttpSource

RULES = Allowlist.parse(
    [
        "good.example",
        "*.cdn.example",
        "http://media.internal:8080/images/",
        "https://assets.example/public/",
        "Bücher.Example",
        "[2606:4700::1]",
    ]
)

ALLOWED = [
    "http://good.example/cat.jpg",
    "https://good.example/cat.jpg",
    "https://good.example:443/cat.jpg",
    "http://good.example:443/cat.jpg",  # ports 80 and 443 whatever the scheme
    "http://GOOD.example/cat.jpg",  # host names are case-insensitive
    "http://good.example./cat.jpg",  # the fully-qualified spelling of the same name
    "http://good.example/a/b/c.jpg?size=large",
    "http://a.cdn.example/x.png",
    "http://a.b.cdn.example/x.png",
    "http://media.internal:8080/images/x.jpg",
    "http://media.internal:8080/images/sub/x.jpg",
    "http://media.internal:8080/images/a%2Fb.jpg",  # an encoded '/' below the prefix stays below it
    "https://assets.example/public/x.jpg",
    "https://assets.example:443/public/x.jpg",
    "http://media.internal:8080/images/x.jpg;v=2",  # path parameters on a name are no dot segment
    "http://media.internal:8080/images/a;b/x.jpg",
    "http://media.internal:8080/images/...;x/y.jpg",
    "http://media.internal:8080/images/..x/y.jpg",
    "http://xn--bcher-kva.example/x.jpg",
    "http://bücher.example/x.jpg",
    "http://[2606:4700::1]/x.jpg",
    "http://[2606:4700:0::1]/x.jpg",
]

REFUSED = [
    # credentials and look-alike hosts: the parsed host is what counts (thumbor-style prefix checks fail these)
    "http://good.example@evil.example/cat.jpg",
    "http://good.example:80@evil.example/cat.jpg",
    "http://user:pass@good.example/cat.jpg",  # no credentials at all
    "http://good.example.evil.example/cat.jpg",
    "http://evil-good.example/cat.jpg",
    "http://goodexample/cat.jpg",
    "http://cdn.example/x.png",  # '*.cdn.example' is below cdn.example, not cdn.example itself
    "http://badcdn.example/x.png",  # label boundary
    "http://cdn.example.evil/x.png",
    # ports
    "http://good.example:8080/cat.jpg",
    "http://good.example:22/cat.jpg",
    "http://good.example:0/cat.jpg",
    "http://a.cdn.example:6379/x.png",
    "http://media.internal/images/x.jpg",  # the prefix names 8080
    "http://media.internal:8081/images/x.jpg",
    # scheme
    "https://media.internal:8080/images/x.jpg",
    "http://assets.example/public/x.jpg",
    "ftp://good.example/cat.jpg",
    "file:///etc/passwd",
    "gopher://good.example:70/_GET",
    "dict://good.example:11211/stat",
    # prefix paths
    "http://media.internal:8080/imagesX/x.jpg",
    "http://media.internal:8080/images",
    "http://media.internal:8080/images/../secret.jpg",
    "http://media.internal:8080/images/%2e%2e/secret.jpg",
    "http://media.internal:8080/images/%2E%2E/secret.jpg",
    "http://media.internal:8080/images/..%2Fsecret.jpg",
    "http://media.internal:8080/images%2F..%2Fsecret.jpg",
    "http://media.internal:8080/images%2Fsecret.jpg",
    "http://media.internal:8080/images/a%5C..%5C..%5Csecret.jpg",
    # Dot segments with path parameters (issue 14): Tomcat-style origins read '..;x' as '..', and httpx
    # does not remove such a segment, so it would pass the prefix and climb out of it at the origin.
    "http://media.internal:8080/images/..;/secret.jpg",
    "http://media.internal:8080/images/..;jsessionid=1/secret.jpg",
    "http://media.internal:8080/images/%2e%2e;jsessionid=1/secret.jpg",
    "http://media.internal:8080/images/..%3b/secret.jpg",
    "http://media.internal:8080/images/%2E%2E%3Bx=1/secret.jpg",
    "http://media.internal:8080/images/sub/..;/..;/secret.jpg",
    "http://media.internal:8080/images/.;x/secret.jpg",
    "http://media.internal:8080/images/a%5C..;%5Csecret.jpg",
    "https://assets.example/public/..;/private/x.jpg",
    "http://good.example/a/..;/cat.jpg",  # under a host rule too: the path is the origin's to resolve
    "https://assets.example/private/x.jpg",
    # odd hosts
    "http://good%2eexample/cat.jpg",
    "http://exa%20mple/cat.jpg",
    "http:///cat.jpg",
    "http:/good.example/cat.jpg",
    "http://[fe80::1%25eth0]/x.jpg",
    "http://[2606:4700::2]/x.jpg",
]


@pytest.mark.parametrize("url", ALLOWED)
def test_allowed(url: str) -> None:
    assert RULES.allows(httpx.URL(url))


@pytest.mark.parametrize("url", REFUSED)
def test_refused(url: str) -> None:
    with pytest.raises(Forbidden) as info:
        RULES.check(httpx.URL(url))
    assert info.value.status_code == 403
    assert info.value.public_message == "Source not allowed"  # never the URL


def test_star_allows_any_host_on_default_ports_only() -> None:
    rules = Allowlist.parse(["*"])
    assert rules.allows(httpx.URL("https://anything.example/x.jpg"))
    assert rules.allows(httpx.URL("http://8.8.8.8/x.jpg"))  # addresses are judged at connect time
    assert not rules.allows(httpx.URL("http://anything.example:8080/x.jpg"))
    assert not rules.allows(httpx.URL("ftp://anything.example/x.jpg"))
    assert not rules.allows(httpx.URL("http://u@anything.example/x.jpg"))


def test_empty_allowlist_allows_nothing() -> None:
    rules = Allowlist.parse(["", "  "])
    assert not rules
    assert not rules.allows(httpx.URL("https://good.example/x.jpg"))


@pytest.mark.parametrize(
    "entry",
    [
        "good.example:8080",  # ports only through a URL prefix
        "http://good.example/images",  # a prefix must end with '/'
        "http://good.example",
        "ftp://good.example/",
        "http://user@good.example/",
        "http://good.example/?q=1/",
        "http://good.example/a/../b/",
        "http://*.good.example/",
        "*good.example",
        "good.*.example",
        "*.",
        "**",
        "good example",
        "good.example/images/",
        "user@good.example",
        "[fe80::1%eth0]",
        "*.[::1]",
        "[1:2:3]",
        "http://media.example:abc/",
        "http://[fe80::1%25eth0]/",
        "http://media.example:0/",
        "http://media.example:70000/",
    ],
)
def test_bad_entries_stop_startup(entry: str) -> None:
    with pytest.raises(ConfigError) as info:
        Allowlist.parse(["good.example", entry])
    assert "THUMBSVC_ALLOWED_SOURCES" in str(info.value)
    assert repr(entry) in str(info.value)


def test_bad_entry_refused_when_the_source_is_built() -> None:
    settings = Settings(keys=("k",), allowed_sources=("media.example:8080",))
    with pytest.raises(ConfigError):
        Thumbnailer(settings)


def test_settings_from_env_feed_the_allowlist() -> None:
    settings = Settings.from_env({"THUMBSVC_KEY": "k", "THUMBSVC_ALLOWED_SOURCES": "good.example, *.cdn.example"})
    remote = Thumbnailer(settings).sources.remote
    assert isinstance(remote, HttpSource)
    rules = remote.allowlist
    assert rules.allows(httpx.URL("https://x.cdn.example/a.jpg"))
    assert not rules.allows(httpx.URL("https://evil.example/a.jpg"))


@pytest.mark.parametrize(
    ("entry", "kind", "host", "port", "path"),
    [
        ("*", "any", "", 0, ""),
        ("Good.Example", "host", "good.example", 0, ""),
        ("*.CDN.example", "suffix", "cdn.example", 0, ""),
        ("http://media.internal:8080/images/", "prefix", "media.internal", 8080, "/images/"),
        ("https://media.internal/", "prefix", "media.internal", 443, "/"),
        ("http://media.internal/a%20b/", "prefix", "media.internal", 80, "/a b/"),
        ("[::1]", "host", "::1", 0, ""),
        ("10.0.0.5", "host", "10.0.0.5", 0, ""),
    ],
)
def test_parse_rule(entry: str, kind: str, host: str, port: int, path: str) -> None:
    rule = parse_rule(entry)
    assert (rule.kind, rule.host, rule.port, rule.path) == (kind, host, port, path)


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("0:0::1", "::1"),
        ("a_b.example", "a_b.example"),
        ("-bad.example", None),
        ("a..b", None),
        ("a%2eb", None),
        ("fe80::1%25eth0", None),
        ("", None),
        ("x" * 64 + ".example", None),
    ],
)
def test_normalize_host(raw: str, normal: str | None) -> None:
    assert normalize_host(raw) == normal


def test_decode_path_keeps_encoded_separators() -> None:
    assert decode_path("/a%20b/c%2Fd%5cE") == "/a b/c%2Fd%5CE"


@given(st.from_regex(r"[a-z]{1,10}(\.[a-z]{1,10}){0,3}", fullmatch=True), st.text(max_size=30))
def test_suffix_rules_never_match_outside_their_zone(label: str, noise: str) -> None:
    """Property: '*.zone' matches exactly the names that end in '.zone' on a label boundary."""
    rules = Allowlist.parse(["*.zone.example"])
    host = f"{label}zone.example"  # glued on without a dot: must never match
    assert not rules.allows(httpx.URL(f"http://{host}/x"))
    assert rules.allows(httpx.URL(f"http://{label}.zone.example/x"))
    try:
        url = httpx.URL(f"http://{noise}@zone.example/x")
    except httpx.InvalidURL:
        return
    assert not rules.allows(url)
