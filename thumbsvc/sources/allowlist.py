"""Which remote sources may be fetched: ``THUMBSVC_ALLOWED_SOURCES``.

A comma-separated list of entries, each one of:

``images.example.com``
    exactly this host, over http or https, on port 80 or 443;
``*.example.com``
    any host below ``example.com`` on a label boundary (``a.example.com``,
    ``a.b.example.com``; not ``example.com`` itself, not ``badexample.com``), ports 80/443;
``https://media.example.com:8443/images/``
    a URL prefix ending in ``/``: same scheme, same host, the port it names (or the
    scheme's default), and a path below the prefix path;
``*``
    any host on ports 80/443. Which addresses may be reached is still decided at
    connect time (only globally routable ones unless opted in);
``s3://media-bucket/`` or ``s3://media-bucket/photos/``
    objects of this bucket (under this key prefix) for ``s3://bucket/key`` sources.
    Only these entries reach buckets: ``*`` and host entries never match one, and
    these never match an http(s) URL.

URLs are compared as parsed by httpx, the parser the loader fetches with: the
scheme, the hostname and the port, never string prefixes of the raw text. URLs with
credentials (``user@host``), odd hostnames or dot segments in the path (also with path
parameters, ``..;x``) are refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv6Address
from urllib.parse import unquote

import httpx

from thumbsvc.config import PREFIX, ConfigError
from thumbsvc.errors import Forbidden
from thumbsvc.urls import S3_SCHEME, is_bucket_name

DEFAULT_PORTS = frozenset({80, 443})
SCHEMES = ("http", "https")
_SCHEME_PORTS = {"http": 80, "https": 443}
_VAR = f"{PREFIX}ALLOWED_SOURCES"
# One DNS label: letters, digits, '-' and '_' (seen in real CDN names), no leading or trailing '-'.
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


def normalize_host(raw_host: str) -> str | None:
    """Given a host as httpx parsed it (IDNA-encoded), return it in the form rules compare, or None if odd.

    Lower-cased, one trailing dot dropped; IPv6 literals in their compressed form.
    Anything but DNS labels, a dotted name or an IPv6 literal (percent signs, zone
    ids, spaces, empty labels) is odd.
    """
    host = raw_host.lower()
    if ":" in host:
        try:
            return IPv6Address(host).compressed if "%" not in host else None
        except ValueError:
            return None
    host = host.removesuffix(".")
    if len(host) > 253 or not _HOSTNAME.fullmatch(host):
        return None
    return host


def _path_is_clean(path: str) -> bool:
    # Origins resolve '.' and '..' (also percent-encoded, also after '\', and with path
    # parameters: Tomcat-style servers read '..;x' as '..'): a prefix check on such a path
    # proves nothing, so such paths are refused.
    segments = re.split(r"[/\\]", unquote(path))
    return not any(segment.partition(";")[0] in (".", "..") for segment in segments)


def decode_path(raw_path: str) -> str:
    """Percent-decode a path for prefix comparison, keeping encoded separators (``%2F``, ``%5C``) encoded.

    ``/public%2Fsecret`` is one segment to many origins, so it must not count as ``/public/secret``.
    """
    parts = re.split(r"(%2[fF]|%5[cC])", raw_path)
    return "".join(part.upper() if index % 2 else unquote(part) for index, part in enumerate(parts))


@dataclass(frozen=True, slots=True)
class Rule:
    """One allowlist entry. ``kind`` is ``any``, ``host``, ``suffix``, ``prefix`` or ``s3`` (``host`` is the bucket
    and ``path`` the key prefix)."""

    kind: str
    host: str = ""
    scheme: str = ""
    port: int = 0
    path: str = ""

    def matches(self, scheme: str, host: str, port: int, path: str) -> bool:
        if self.kind == "s3":
            return False  # a bucket entry never allows an http(s) URL
        if self.kind == "prefix":
            return scheme == self.scheme and host == self.host and port == self.port and path.startswith(self.path)
        if port not in DEFAULT_PORTS:
            return False
        if self.kind == "any":
            return True
        if self.kind == "host":
            return host == self.host
        return host.endswith("." + self.host)


def parse_rule(entry: str) -> Rule:
    """Given one allowlist entry, return its rule; raise ConfigError naming the entry if it is malformed."""
    text = entry.strip()

    def bad(why: str) -> ConfigError:
        return ConfigError(f"Config '{_VAR}' has value {entry!r}. {why}")

    if text == "*":
        return Rule("any")
    if text[: len(S3_SCHEME)].lower() == S3_SCHEME:
        return _parse_s3(text, bad)
    if "://" in text:
        return _parse_prefix(text, bad)
    if "/" in text or "@" in text or text.count(":") == 1:
        raise bad("Use a bare host name, '*.suffix', '*' or a URL prefix ending in '/' (which may name a port).")
    kind = "host"
    if text.startswith("*."):
        kind, text = "suffix", text[2:]
    if "*" in text:
        raise bad("A wildcard may only be '*' or lead a '*.suffix' entry.")
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        raw_host = httpx.URL(f"http://[{text}]/" if ":" in text else f"http://{text}/").raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise bad("Not a valid host name.") from exc
    host = normalize_host(raw_host)
    if host is None or (kind == "suffix" and ":" in host):
        raise bad("Not a valid host name.")
    return Rule(kind, host=host)


def _parse_prefix(text: str, bad: Callable[[str], ConfigError]) -> Rule:
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise bad("Not a valid URL prefix.") from exc
    if url.scheme not in SCHEMES:
        raise bad("A URL prefix must start with http:// or https://.")
    if not text.endswith("/"):
        raise bad("A URL prefix must end with '/'.")
    if url.userinfo or url.query or url.fragment or "?" in text or "#" in text:
        raise bad("A URL prefix may not carry credentials, a query or a fragment.")
    host = normalize_host(url.raw_host.decode("ascii"))
    if host is None:
        raise bad("Not a valid host name.")
    if "*" in text:
        raise bad("A URL prefix may not contain a wildcard.")
    raw_path = url.raw_path.decode("ascii")
    if not _path_is_clean(raw_path) or not _path_is_clean(text.partition("://")[2].partition("/")[2]):
        raise bad("A URL prefix may not contain '.' or '..' segments.")
    port = url.port if url.port is not None else _SCHEME_PORTS[url.scheme]
    if not 0 < port < 65536:
        raise bad("Not a valid port.")
    return Rule("prefix", host=host, scheme=url.scheme, port=port, path=decode_path(raw_path))


def _parse_s3(text: str, bad: Callable[[str], ConfigError]) -> Rule:
    if not text.startswith(S3_SCHEME) or not text.endswith("/"):
        raise bad("An S3 entry is 's3://bucket/' or 's3://bucket/prefix/': lower case, ending in '/'.")
    bucket, _, prefix = text[len(S3_SCHEME) :].partition("/")
    if not is_bucket_name(bucket):
        raise bad("Not a valid bucket name.")
    if prefix and any(segment in ("", ".", "..") for segment in prefix[:-1].split("/")):
        raise bad("An S3 key prefix may not contain empty, '.' or '..' segments.")
    return Rule("s3", host=bucket, path=prefix)


class Allowlist:
    """The parsed ``THUMBSVC_ALLOWED_SOURCES``; ``check(url)`` raises ``Forbidden`` unless a rule matches."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = tuple(rules)

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Allowlist:
        """Given the entries, return the allowlist; raise ConfigError naming the first bad entry."""
        return cls(parse_rule(entry) for entry in entries if entry.strip())

    def __bool__(self) -> bool:
        return bool(self.rules)

    def allows(self, url: httpx.URL) -> bool:
        """Given a parsed URL, return whether some rule allows fetching it."""
        try:
            self.check(url)
        except Forbidden:
            return False
        return True

    def check(self, url: httpx.URL) -> None:
        """Raise ``Forbidden`` unless ``url`` is an http(s) URL that some rule allows."""
        if url.scheme not in SCHEMES:
            raise _refuse(f"scheme {url.scheme!r} is not fetched")
        if url.userinfo:
            raise _refuse("URLs with credentials are not fetched")
        host = normalize_host(url.raw_host.decode("ascii"))
        if host is None:
            raise _refuse(f"odd host {url.raw_host!r}")
        port = url.port if url.port is not None else _SCHEME_PORTS[url.scheme]
        raw_path = url.raw_path.decode("ascii").partition("?")[0]
        if not _path_is_clean(raw_path):
            raise _refuse("dot segments in the path")
        path = decode_path(raw_path)
        if not any(rule.matches(url.scheme, host, port, path) for rule in self.rules):
            raise _refuse(f"{url.scheme}://{host}:{port} is not on the allowlist")

    @property
    def has_s3(self) -> bool:
        """Whether some entry allows a bucket."""
        return any(rule.kind == "s3" for rule in self.rules)

    def check_s3(self, bucket: str, key: str) -> None:
        """Raise ``Forbidden`` unless an ``s3://`` entry allows this bucket and key (compared as given)."""
        if not any(rule.kind == "s3" and rule.host == bucket and key.startswith(rule.path) for rule in self.rules):
            raise _refuse(f"s3://{bucket}/ (under the key's prefix) is not on the allowlist")


def _refuse(detail: str) -> Forbidden:
    return Forbidden(f"source not allowed: {detail}", public_message="Source not allowed")
