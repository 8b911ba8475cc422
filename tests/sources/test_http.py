"""The HTTP loader against real origins on loopback.

Every connection goes through ``LoopbackOnlyBackend`` (it refuses anything but
127.0.0.0/8 and ::1 and records each attempt) and names resolve through a
``StubResolver`` table, so no test can send traffic off this machine even if the
guard under test were broken. "Nothing connected" is proven twice: the edge saw no
attempt, and the origin's listener accepted no connection.
"""

from __future__ import annotations

import gzip
import socket
import ssl
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import pytest
from blake3 import blake3

from tests.origin import (
    LoopbackOnlyBackend,
    OriginServer,
    StubResolver,
    body,
    chunked,
    close_delimited,
    gzip_bomb,
    late_bytes,
    numeric_resolver,
    raw,
    redirect,
    repeat,
    response_bytes,
    send,
    short_body,
    short_then_junk,
    slow_headers,
    status,
    trickle,
    with_extra_response,
)
from thumbsvc.errors import (
    BadRequest,
    Forbidden,
    SourceNotFound,
    SourceTooLarge,
    ThumbError,
    UpstreamError,
    UpstreamTimeout,
)
from thumbsvc.sources.http import USER_AGENT, FetchPolicy, HttpSource, Resolver, resolve_host
from thumbsvc.sources.pool import REUSE_QUIET_S

pytestmark = pytest.mark.anyio

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8 + b"\xff\xd9"
LIMIT = 64_000
LOOPBACK = ("127.0.0.0/8",)

SourceFactory = Callable[..., HttpSource]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def origin() -> Iterator[OriginServer]:
    with OriginServer("127.0.0.1") as server:
        server.route("/cat.jpg", body(JPEG))
        yield server


@pytest.fixture
def trap() -> Iterator[OriginServer]:
    """A listener nothing may connect to; tests assert ``trap.accepts == 0``."""
    with OriginServer("127.0.0.1") as server:
        server.route("/secret", body(b"secret"))
        yield server


@pytest.fixture
def edge() -> LoopbackOnlyBackend:
    return LoopbackOnlyBackend()


@pytest.fixture
async def make_source(edge: LoopbackOnlyBackend) -> AsyncIterator[SourceFactory]:
    made: list[HttpSource] = []

    def factory(
        *,
        allowed: tuple[str, ...] = ("*",),
        private: tuple[str, ...] = LOOPBACK,
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
        **overrides: Any,
    ) -> HttpSource:
        values: dict[str, Any] = {
            "allowed_sources": allowed,
            "allow_private_networks": private,
            "connect_timeout_s": 2.0,
            "fetch_timeout_s": 5.0,
            "max_redirects": 3,
            "max_source_bytes": LIMIT,
        }
        values.update(overrides)
        source = HttpSource(
            FetchPolicy(**values),
            resolver=resolver or StubResolver({"origin.test": ["127.0.0.1"]}),
            network_backend=edge,
            ssl_context=ssl_context,
        )
        made.append(source)
        return source

    yield factory
    for source in made:
        await source.aclose()


def named(server: OriginServer, path: str = "/cat.jpg", host: str = "origin.test") -> str:
    return server.url(path, host=host)


def prefix(server: OriginServer, host: str = "origin.test") -> tuple[str]:
    return (server.url("/", host=host),)


async def expect(error: type[ThumbError], status_code: int, source: HttpSource, url: str) -> ThumbError:
    with pytest.raises(error) as info:
        await source.fetch(url)
    assert info.value.status_code == status_code
    # Public text never names the URL, a host or an address.
    assert "origin.test" not in info.value.public_message and "127." not in info.value.public_message
    return info.value


# Success path ---------------------------------------------------------------------------------------------------


async def test_fetch_returns_bytes_and_content_hash(
    origin: OriginServer, make_source: SourceFactory, edge: LoopbackOnlyBackend
) -> None:
    source = make_source(allowed=prefix(origin))
    image = await source.fetch(named(origin))
    assert image.data == JPEG
    assert image.validator == blake3(JPEG).hexdigest()[:32]
    seen = origin.seen[0]
    assert seen.headers["host"] == f"origin.test:{origin.port}"  # the name, not the pinned address
    assert seen.headers["user-agent"] == USER_AGENT and USER_AGENT.startswith("thumbsvc/")
    assert seen.headers["accept-encoding"] == "identity"
    assert "cookie" not in seen.headers and "authorization" not in seen.headers
    # The socket went to the checked address; the name never reached the socket layer.
    assert edge.connects == [("127.0.0.1", origin.port)]


async def test_validator_follows_content(origin: OriginServer, make_source: SourceFactory) -> None:
    origin.route("/other.jpg", body(JPEG + b"x"))
    source = make_source(allowed=prefix(origin))
    first = await source.fetch(named(origin))
    again = await source.fetch(named(origin, "/cat.jpg?v=2"))
    other = await source.fetch(named(origin, "/other.jpg"))
    assert first.validator == again.validator != other.validator


async def test_one_pooled_connection_and_one_lookup_for_repeated_fetches(
    origin: OriginServer, make_source: SourceFactory
) -> None:
    resolver = StubResolver({"origin.test": ["127.0.0.1"]})
    source = make_source(allowed=prefix(origin), resolver=resolver)
    for _ in range(3):
        assert (await source.fetch(named(origin))).data == JPEG
        await anyio.sleep(REUSE_QUIET_S)  # a connection is reused once it has been quiet this long
    assert origin.accepts == 1
    assert resolver.lookups == ["origin.test"]


async def test_back_to_back_fetches_do_not_reuse_a_connection_that_just_answered(
    origin: OriginServer, make_source: SourceFactory
) -> None:
    source = make_source(allowed=prefix(origin))
    for _ in range(2):
        assert (await source.fetch(named(origin))).data == JPEG
    assert origin.accepts == 2


async def test_source_can_be_used_again_after_aclose(origin: OriginServer, make_source: SourceFactory) -> None:
    source = make_source(allowed=prefix(origin))
    await source.fetch(named(origin))
    await source.aclose()
    assert (await source.fetch(named(origin))).data == JPEG


async def test_origin_cookies_are_not_kept(origin: OriginServer, make_source: SourceFactory) -> None:
    origin.route("/set", body(JPEG, headers=[("Set-Cookie", "session=abc; Path=/")]))
    source = make_source(allowed=prefix(origin))
    await source.fetch(named(origin, "/set"))
    await source.fetch(named(origin))
    assert "cookie" not in origin.seen[1].headers


async def test_ip_literal_source_with_opt_in(origin: OriginServer, make_source: SourceFactory) -> None:
    source = make_source(allowed=(origin.url("/"),))
    assert (await source.fetch(origin.url("/cat.jpg"))).data == JPEG


async def test_gzip_encoded_body_is_decoded(origin: OriginServer, make_source: SourceFactory) -> None:
    origin.route("/gz", body(gzip.compress(JPEG), headers=[("Content-Encoding", "gzip")]))
    origin.route("/deflate", body(zlib.compress(JPEG), headers=[("Content-Encoding", "deflate")]))
    source = make_source(allowed=prefix(origin))
    assert (await source.fetch(named(origin, "/gz"))).data == JPEG
    assert (await source.fetch(named(origin, "/deflate"))).data == JPEG


async def test_exactly_the_byte_limit_is_fine(origin: OriginServer, make_source: SourceFactory) -> None:
    origin.route("/exact", chunked(repeat(b"a" * 1000, LIMIT // 1000)))
    source = make_source(allowed=prefix(origin))
    assert len((await source.fetch(named(origin, "/exact"))).data) == LIMIT


# SSRF: forbidden addresses are never connected to --------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",  # cloud metadata
        "169.254.170.2",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "0.0.0.0",
        "127.0.0.1",  # loopback, not opted in below
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "fd00:ec2::254",
        "fe80::1",
        "::ffff:169.254.169.254",
        "::ffff:127.0.0.1",
        "::127.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::a9fe:a9fe",
        "2002:a9fe:a9fe::1",
        "2001:0:4136:e378:8000:63bf:80ff:fffe",
    ],
)
async def test_name_resolving_to_forbidden_address_is_refused(
    address: str, trap: OriginServer, make_source: SourceFactory, edge: LoopbackOnlyBackend
) -> None:
    resolver = StubResolver({"metadata.test": [address]})
    source = make_source(allowed=prefix(trap, "metadata.test"), private=(), resolver=resolver)
    await expect(Forbidden, 403, source, named(trap, "/secret", "metadata.test"))
    assert resolver.lookups == ["metadata.test"]
    assert edge.connects == [] and trap.accepts == 0


async def test_one_forbidden_answer_among_public_ones_refuses_the_host(
    trap: OriginServer, make_source: SourceFactory, edge: LoopbackOnlyBackend
) -> None:
    resolver = StubResolver({"mixed.test": ["127.0.0.1", "93.184.215.14", "10.0.0.7"]})
    source = make_source(allowed=prefix(trap, "mixed.test"), resolver=resolver)
    await expect(Forbidden, 403, source, named(trap, "/secret", "mixed.test"))
    assert edge.connects == [] and trap.accepts == 0


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "2130706433",
        "0x7f.1",
        "127.1",
        "0x7f000001",
        "017700000001",
        "0",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
    ],
)
async def test_numeric_host_tricks_resolve_to_loopback_and_are_refused(
    host: str, trap: OriginServer, make_source: SourceFactory, edge: LoopbackOnlyBackend
) -> None:
    # The allowlist names the trick itself (an operator listing a host that points inward):
    # the resolved address is what gets checked, whatever spelling the URL used.
    source = make_source(allowed=(f"http://{host}:{trap.port}/",), private=(), resolver=numeric_resolver)
    await expect(Forbidden, 403, source, f"http://{host}:{trap.port}/secret")
    assert edge.connects == [] and trap.accepts == 0


@pytest.mark.parametrize("host", ["0177.0.0.1", "127.000.000.001", "256.0.0.1"])
async def test_dotted_quads_httpx_cannot_read_are_bad_requests(
    host: str, make_source: SourceFactory, edge: LoopbackOnlyBackend
) -> None:
    # httpx refuses leading zeros (octal) in four-part addresses: the URL never gets as far as a lookup.
    await expect(BadRequest, 400, make_source(), f"http://{host}/x.jpg")
    assert edge.connects == []


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "0177.0.0.1", "127.1"])
def test_production_resolver_reads_numeric_hosts_as_addresses(host: str) -> None:
    # glibc parses these without any DNS query: they are addresses, not names.
    assert resolve_host(host, 80) == ["127.0.0.1"]


async def test_opt_in_is_exact(make_source: SourceFactory, edge: LoopbackOnlyBackend) -> None:
    with OriginServer("127.0.0.2") as allowed, OriginServer("127.0.0.1") as other:
        allowed.route("/cat.jpg", body(JPEG))
        other.route("/cat.jpg", body(JPEG))
        source = make_source(allowed=(allowed.url("/"), other.url("/")), private=("127.0.0.2/32",))
        assert (await source.fetch(allowed.url("/cat.jpg"))).data == JPEG
        await expect(Forbidden, 403, source, other.url("/cat.jpg"))
        assert other.accepts == 0
        assert edge.connects == [("127.0.0.2", allowed.port)]


async def test_dns_rebinding_cannot_swap_the_checked_address(
    origin: OriginServer, make_source: SourceFactory, edge: LoopbackOnlyBackend
) -> None:
    # The name first answers with the allowed origin, then (new connection) with the metadata address.
    answers = iter([["127.0.0.1"], ["169.254.169.254"]])
    lookups: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        lookups.append(host)
        return next(answers)

    origin.route("/close.jpg", body(JPEG, headers=[("Connection", "close")]))
    source = make_source(allowed=prefix(origin), resolver=rebinding)
    assert (await source.fetch(named(origin, "/close.jpg"))).data == JPEG
    await expect(Forbidden, 403, source, named(origin))
    assert lookups == ["origin.test", "origin.test"]
    assert edge.connects == [("127.0.0.1", origin.port)] and edge.refused == []


async def test_unknown_name_is_an_origin_error(make_source: SourceFactory, edge: LoopbackOnlyBackend) -> None:
    source = make_source(allowed=("http://nowhere.test:8080/",))
    await expect(UpstreamError, 502, source, "http://nowhere.test:8080/x.jpg")
    assert edge.connects == []


async def test_slow_dns_times_out(make_source: SourceFactory, edge: LoopbackOnlyBackend) -> None:
    resolver = StubResolver({"slow.test": ["127.0.0.1"]}, delay_s=0.6)
    source = make_source(allowed=("http://slow.test:8080/",), resolver=resolver, connect_timeout_s=0.2)
    await expect(UpstreamTimeout, 504, source, "http://slow.test:8080/x.jpg")
    assert edge.connects == []


async def test_checked_addresses_are_tried_in_turn(
    origin: OriginServer, make_source: SourceFactory, edge: LoopbackOnlyBackend
) -> None:
    # Nothing listens on 127.0.0.3: the second checked address answers.
    resolver = StubResolver({"origin.test": ["127.0.0.3", "127.0.0.1"]})
    source = make_source(allowed=prefix(origin), resolver=resolver)
    assert (await source.fetch(named(origin))).data == JPEG
    assert edge.connects == [("127.0.0.3", origin.port), ("127.0.0.1", origin.port)]


async def test_empty_dns_answer_is_an_origin_error(make_source: SourceFactory, edge: LoopbackOnlyBackend) -> None:
    source = make_source(allowed=("http://empty.test:8080/",), resolver=StubResolver({"empty.test": []}))
    await expect(UpstreamError, 502, source, "http://empty.test:8080/x.jpg")
    assert edge.connects == []


@pytest.fixture
def stalled_port() -> Iterator[int]:
    """A listener whose accept queue is full: the kernel drops new SYNs, so connecting hangs."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port: int = server.getsockname()[1]
        fillers = []
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        try:
            yield port
        finally:
            for filler in fillers:
                filler.close()


async def test_connect_deadline(stalled_port: int, make_source: SourceFactory) -> None:
    source = make_source(allowed=(f"http://origin.test:{stalled_port}/",), connect_timeout_s=0.3)
    await expect(UpstreamTimeout, 504, source, f"http://origin.test:{stalled_port}/cat.jpg")


# Allowlist at the loader ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://origin.test@evil.test:{port}/cat.jpg",
        "http://origin.test.evil.test:{port}/cat.jpg",
        "http://user:pw@origin.test:{port}/cat.jpg",
        "https://origin.test:{port}/cat.jpg",
        "http://origin.test:1/cat.jpg",
        "http://origin.test/cat.jpg",
        "http://origin.test:{port}/%2e%2e/cat.jpg",
        "http://origin.test:{port}/img/..%2F..%2Fcat.jpg",
        "http://origin.test:-1/cat.jpg",
        "http://exa[mple:{port}/cat.jpg",
        "http://origin%2etest:{port}/cat.jpg",
    ],
)
async def test_urls_off_the_allowlist_are_refused_before_any_lookup(
    url: str, origin: OriginServer, make_source: SourceFactory, edge: LoopbackOnlyBackend
) -> None:
    resolver = StubResolver({"origin.test": ["127.0.0.1"], "evil.test": ["127.0.0.1"]})
    source = make_source(allowed=(named(origin, "/cat.jpg").rsplit("/", 1)[0] + "/",), resolver=resolver)
    await expect(Forbidden, 403, source, url.format(port=origin.port))
    assert resolver.lookups == [] and edge.connects == [] and origin.accepts == 0


@pytest.mark.parametrize("url", ["http://[::1", "http://h:abc/x", "http://[1:2:3]/x", "http://h/\x00"])
async def test_unparsable_source_url_is_a_bad_request(url: str, make_source: SourceFactory) -> None:
    await expect(BadRequest, 400, make_source(), url)


# Redirects ------------------------------------------------------------------------------------------------------


async def test_redirects_are_followed_with_host_kept(origin: OriginServer, make_source: SourceFactory) -> None:
    origin.route("/a", redirect("/b", 301))
    origin.route("/b", redirect(named(origin, "/c"), 307))
    origin.route("/c", redirect("cat.jpg", 308))
    source = make_source(allowed=prefix(origin))
    assert (await source.fetch(named(origin, "/a"))).data == JPEG
    assert [seen.path for seen in origin.seen] == ["/a", "/b", "/c", "/cat.jpg"]
    assert {seen.headers["host"] for seen in origin.seen} == {f"origin.test:{origin.port}"}


@pytest.mark.parametrize(("hops", "ok"), [(3, True), (4, False)])
async def test_redirect_limit(hops: int, ok: bool, origin: OriginServer, make_source: SourceFactory) -> None:
    for hop in range(hops):
        origin.route(f"/r{hop}", redirect(f"/r{hop + 1}" if hop + 1 < hops else "/cat.jpg", 302))
    source = make_source(allowed=prefix(origin), max_redirects=3)
    if ok:
        assert (await source.fetch(named(origin, "/r0"))).data == JPEG
    else:
        await expect(UpstreamError, 502, source, named(origin, "/r0"))
        assert len(origin.seen) == 4  # the fourth redirect is not followed


async def test_redirect_loop_ends_in_502(origin: OriginServer, make_source: SourceFactory) -> None:
    origin.route("/loop", redirect("/loop", 302))
    await expect(UpstreamError, 502, make_source(allowed=prefix(origin)), named(origin, "/loop"))


async def test_no_redirects_allowed(origin: OriginServer, make_source: SourceFactory) -> None:
    origin.route("/a", redirect("/cat.jpg"))
    await expect(UpstreamError, 502, make_source(allowed=prefix(origin), max_redirects=0), named(origin, "/a"))


async def test_redirect_to_forbidden_address_is_refused(
    origin: OriginServer, trap: OriginServer, make_source: SourceFactory, edge: LoopbackOnlyBackend
) -> None:
    # The trap is on the allowlist, but its name points at loopback, which is not opted in.
    resolver = StubResolver({"origin.test": ["127.0.0.1"], "inside.test": ["127.0.0.1"]})
    origin.route("/hop", redirect(named(trap, "/secret", "inside.test")))
    with OriginServer("127.0.0.2") as start:
        start.route("/hop", redirect(named(trap, "/secret", "inside.test")))
        resolver.table["start.test"] = ["127.0.0.2"]
        source = make_source(
            allowed=(*prefix(start, "start.test"), *prefix(trap, "inside.test")),
            private=("127.0.0.2/32",),
            resolver=resolver,
        )
        await expect(Forbidden, 403, source, named(start, "/hop", "start.test"))
        assert start.accepts == 1
    assert trap.accepts == 0
    assert edge.connects == [("127.0.0.2", start.port)]


async def test_redirect_to_metadata_name_is_refused(
    origin: OriginServer, make_source: SourceFactory, edge: LoopbackOnlyBackend
) -> None:
    resolver = StubResolver({"origin.test": ["127.0.0.1"], "metadata.test": ["169.254.169.254"]})
    origin.route("/hop", redirect("http://metadata.test/latest/meta-data/iam/security-credentials/"))
    source = make_source(allowed=(*prefix(origin), "metadata.test"), resolver=resolver)
    await expect(Forbidden, 403, source, named(origin, "/hop"))
    assert edge.refused == [] and edge.connects == [("127.0.0.1", origin.port)]


@pytest.mark.parametrize(
    "location",
    [
        "file:///etc/passwd",
        "gopher://origin.test:70/_INFO",
        "ftp://origin.test/cat.jpg",
        "dict://origin.test:11211/stats",
        "data:image/png;base64,iVBORw0KGgo=",
        "javascript:alert(1)",
        "http://user:pw@origin.test:{port}/cat.jpg",
        "http://elsewhere.test:{port}/cat.jpg",
        "https://origin.test:{port}/cat.jpg",
        "//origin.test:1/cat.jpg",
    ],
)
async def test_redirect_off_the_allowlist_is_refused(
    location: str, origin: OriginServer, make_source: SourceFactory
) -> None:
    origin.route("/hop", redirect(location.format(port=origin.port)))
    source = make_source(allowed=prefix(origin))
    await expect(Forbidden, 403, source, named(origin, "/hop"))
    assert [seen.path for seen in origin.seen] == ["/hop"]


@pytest.mark.parametrize("handler", [redirect("", 302), redirect("http://[::1", 302)])
async def test_broken_redirect_is_an_origin_error(
    handler: Any, origin: OriginServer, make_source: SourceFactory
) -> None:
    origin.route("/hop", handler)
    await expect(UpstreamError, 502, make_source(allowed=prefix(origin)), named(origin, "/hop"))


# Origin status mapping ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error", "mapped"),
    [
        (404, SourceNotFound, 404),
        (410, SourceNotFound, 404),
        (400, UpstreamError, 502),
        (401, UpstreamError, 502),
        (403, UpstreamError, 502),
        (429, UpstreamError, 502),
        (500, UpstreamError, 502),
        (502, UpstreamError, 502),
        (503, UpstreamError, 502),
        (204, UpstreamError, 502),
        (304, UpstreamError, 502),
    ],
)
async def test_origin_status_mapping(
    code: int, error: type[ThumbError], mapped: int, origin: OriginServer, make_source: SourceFactory
) -> None:
    origin.route("/status", status(code) if code not in (204, 304) else lambda h: send(h, code, b""))
    await expect(error, mapped, make_source(allowed=prefix(origin)), named(origin, "/status"))


# Byte limits ----------------------------------------------------------------------------------------------------


async def test_declared_length_over_limit_is_refused_before_reading(
    origin: OriginServer, make_source: SourceFactory
) -> None:
    origin.route("/huge", short_body(10**12, b"x" * 100))
    await expect(SourceTooLarge, 413, make_source(allowed=prefix(origin)), named(origin, "/huge"))


async def test_missing_length_is_capped(origin: OriginServer, make_source: SourceFactory) -> None:
    origin.route("/stream", close_delimited(repeat(b"x" * 8192, 1000)))  # 8 MB, no Content-Length
    await expect(SourceTooLarge, 413, make_source(allowed=prefix(origin)), named(origin, "/stream"))


async def test_chunked_body_is_capped(origin: OriginServer, make_source: SourceFactory) -> None:
    origin.route("/chunks", chunked(repeat(b"x" * 8192, 1000)))
    await expect(SourceTooLarge, 413, make_source(allowed=prefix(origin)), named(origin, "/chunks"))


async def test_one_byte_over_the_limit(origin: OriginServer, make_source: SourceFactory) -> None:
    origin.route("/over", chunked([b"a" * LIMIT, b"b"]))
    await expect(SourceTooLarge, 413, make_source(allowed=prefix(origin)), named(origin, "/over"))


async def test_small_length_with_a_larger_body_reads_only_the_declared_bytes(
    origin: OriginServer, make_source: SourceFactory
) -> None:
    def liar(handler: Any) -> None:
        handler.close_connection = True
        send(handler, 200, b"y" * 500_000, length=100)

    origin.route("/liar", liar)
    image = await make_source(allowed=prefix(origin)).fetch(named(origin, "/liar"))
    assert image.data == b"y" * 100


async def test_body_shorter_than_declared_is_an_origin_error(origin: OriginServer, make_source: SourceFactory) -> None:
    origin.route("/short", short_body(5000, b"x" * 100))
    await expect(UpstreamError, 502, make_source(allowed=prefix(origin)), named(origin, "/short"))


async def test_gzip_bomb_is_capped(origin: OriginServer, make_source: SourceFactory) -> None:
    bomb = gzip_bomb(50_000_000)  # ~50 KB on the wire, 50 MB inflated
    assert len(bomb) < 100_000
    origin.route("/bomb", body(bomb, headers=[("Content-Encoding", "gzip")]))
    await expect(SourceTooLarge, 413, make_source(allowed=prefix(origin)), named(origin, "/bomb"))


async def test_deflate_bomb_is_capped(origin: OriginServer, make_source: SourceFactory) -> None:
    origin.route("/bomb", body(zlib.compress(b"\0" * 20_000_000, 9), headers=[("Content-Encoding", "deflate")]))
    await expect(SourceTooLarge, 413, make_source(allowed=prefix(origin)), named(origin, "/bomb"))


@pytest.mark.parametrize(
    ("payload", "encoding"),
    [
        (b"\x1f\x8b\x08\x00garbage-not-gzip", "gzip"),
        (gzip.compress(JPEG)[:-20], "gzip"),  # truncated stream
        (JPEG, "br"),
        (JPEG, "gzip, gzip"),
    ],
)
async def test_bad_content_encoding_is_an_origin_error(
    payload: bytes, encoding: str, origin: OriginServer, make_source: SourceFactory
) -> None:
    origin.route("/enc", body(payload, headers=[("Content-Encoding", encoding)]))
    await expect(UpstreamError, 502, make_source(allowed=prefix(origin)), named(origin, "/enc"))


# Deadlines ------------------------------------------------------------------------------------------------------


async def test_slow_origin_times_out(origin: OriginServer, make_source: SourceFactory) -> None:
    origin.route("/slow", slow_headers(1.5))
    source = make_source(allowed=prefix(origin), fetch_timeout_s=0.4)
    await expect(UpstreamTimeout, 504, source, named(origin, "/slow"))


async def test_trickling_origin_hits_the_total_deadline(origin: OriginServer, make_source: SourceFactory) -> None:
    # Each byte arrives well within the read timeout; only the total deadline stops this.
    origin.route("/trickle", trickle(b"z" * 40, interval_s=0.05))
    source = make_source(allowed=prefix(origin), fetch_timeout_s=0.5)
    await expect(UpstreamTimeout, 504, source, named(origin, "/trickle"))


async def test_slow_redirect_chain_shares_one_deadline(origin: OriginServer, make_source: SourceFactory) -> None:
    def slow_hop(target: str) -> Any:
        def handle(handler: Any) -> None:
            import time

            time.sleep(0.25)
            send(handler, 302, b"", headers=[("Location", target)])

        return handle

    origin.route("/s0", slow_hop("/s1"))
    origin.route("/s1", slow_hop("/s2"))
    origin.route("/s2", slow_hop("/cat.jpg"))
    source = make_source(allowed=prefix(origin), fetch_timeout_s=0.6)
    await expect(UpstreamTimeout, 504, source, named(origin, "/s0"))


# Broken origins -------------------------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_connection_refused_is_an_origin_error(make_source: SourceFactory) -> None:
    port = _closed_port()
    source = make_source(allowed=(f"http://origin.test:{port}/",))
    await expect(UpstreamError, 502, source, f"http://origin.test:{port}/cat.jpg")


@pytest.mark.parametrize(
    "reply",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"",
        b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n",
        b"HTTP/1.1 999999999 Weird\r\n\r\n",
        b"\x00\x01\x02\x03" * 100,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
async def test_garbage_answers_are_origin_errors(
    reply: bytes, origin: OriginServer, make_source: SourceFactory
) -> None:
    origin.route("/garbage", raw(reply))
    await expect(UpstreamError, 502, make_source(allowed=prefix(origin)), named(origin, "/garbage"))


async def test_html_is_returned_as_bytes_for_the_decoder_to_refuse(
    origin: OriginServer, make_source: SourceFactory
) -> None:
    # The loader does not trust Content-Type either way; decode.py refuses what is not an image (415).
    page = b"<!doctype html><title>Sign in</title><form></form>"
    origin.route("/page", body(page, content_type="text/html"))
    assert (await make_source(allowed=prefix(origin)).fetch(named(origin, "/page"))).data == page


async def test_https_to_a_plain_http_origin_fails(origin: OriginServer, make_source: SourceFactory) -> None:
    source = make_source(allowed=(f"https://origin.test:{origin.port}/",))
    await expect(UpstreamError, 502, source, f"https://origin.test:{origin.port}/cat.jpg")


# TLS: pinned address, name kept for SNI and certificate checks --------------------------------------------------


@pytest.fixture(scope="module")
def tls() -> Any:
    trustme = pytest.importorskip("trustme")
    return trustme.CA()


@pytest.fixture
def tls_origin(tls: Any) -> Iterator[OriginServer]:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.issue_cert("origin.test").configure_cert(server_context)
    with OriginServer("127.0.0.1", ssl_context=server_context) as server:
        server.route("/cat.jpg", body(JPEG))
        yield server


@pytest.fixture
def client_context(tls: Any) -> ssl.SSLContext:
    context = ssl.create_default_context()
    tls.configure_trust(context)
    return context


async def test_tls_uses_the_name_for_sni_and_certificate(
    tls_origin: OriginServer, client_context: ssl.SSLContext, make_source: SourceFactory, edge: LoopbackOnlyBackend
) -> None:
    source = make_source(allowed=prefix(tls_origin), ssl_context=client_context)
    assert (await source.fetch(named(tls_origin))).data == JPEG
    assert tls_origin.sni_names == ["origin.test"]
    assert tls_origin.seen[0].headers["host"] == f"origin.test:{tls_origin.port}"
    assert edge.connects == [("127.0.0.1", tls_origin.port)]


async def test_tls_certificate_for_another_name_is_refused(
    tls_origin: OriginServer, client_context: ssl.SSLContext, make_source: SourceFactory
) -> None:
    resolver = StubResolver({"impostor.test": ["127.0.0.1"]})
    source = make_source(allowed=prefix(tls_origin, "impostor.test"), ssl_context=client_context, resolver=resolver)
    await expect(UpstreamError, 502, source, named(tls_origin, "/cat.jpg", "impostor.test"))
    assert tls_origin.seen == []


async def test_tls_untrusted_certificate_is_refused(tls_origin: OriginServer, make_source: SourceFactory) -> None:
    # The default trust store does not know the test CA.
    source = make_source(allowed=prefix(tls_origin))
    await expect(UpstreamError, 502, source, named(tls_origin))
    assert tls_origin.seen == []


# Origin connections (issue 14) ----------------------------------------------------------------------------------
# A pooled connection is reused only after an exchange that ended with nothing more on it: no byte left in
# h11's buffer, in the TLS layer or on the socket. Otherwise an origin (or a file it serves with a wrong
# length) decides what the next source from the same host is: HTTP response desynchronisation.

OTHER = b"\xff\xd8\xff\xe0" + b"the other image " * 64 + b"\xff\xd9"
SMUGGLED = b"\xff\xd8\xff\xe0 smuggled \xff\xd9"


# Each attack is followed at once by the next fetch (the quiet period keeps the connection out of use) and
# after the quiet period (the bytes past the response retire it).
PAUSES = pytest.mark.parametrize("pause_s", [0.0, REUSE_QUIET_S], ids=["at-once", "after-quiet"])


@PAUSES
@pytest.mark.parametrize("writes", [1, 2])
async def test_an_extra_response_is_never_read_as_the_next_answer(
    writes: int, pause_s: float, origin: OriginServer, make_source: SourceFactory
) -> None:
    origin.route("/smuggle.jpg", with_extra_response(JPEG, SMUGGLED, writes=writes))
    origin.route("/other.jpg", body(OTHER))
    source = make_source(allowed=prefix(origin))
    assert (await source.fetch(named(origin, "/smuggle.jpg"))).data == JPEG
    await anyio.sleep(pause_s)
    assert (await source.fetch(named(origin, "/other.jpg"))).data == OTHER
    assert origin.accepts == 2  # the connection with the extra response was retired
    await anyio.sleep(REUSE_QUIET_S)
    assert (await source.fetch(named(origin, "/other.jpg"))).data == OTHER
    assert origin.accepts == 2  # a clean exchange keeps its connection


@PAUSES
async def test_a_short_length_followed_by_junk_does_not_spoil_the_next_fetch(
    pause_s: float, origin: OriginServer, make_source: SourceFactory
) -> None:
    # The declared length swallows 10 bytes of the junk: the body is complete but wrong (the decoder's
    # problem); the junk after it must not become the next fetch's answer (it made that a 502).
    origin.route("/short.jpg", short_then_junk(JPEG, b"HTTP/1.1 999 junk\r\n" * 40, missing=10))
    origin.route("/other.jpg", body(OTHER))
    source = make_source(allowed=prefix(origin))
    assert (await source.fetch(named(origin, "/short.jpg"))).data == JPEG + b"HTTP/1.1 9"
    await anyio.sleep(pause_s)
    assert (await source.fetch(named(origin, "/other.jpg"))).data == OTHER
    assert origin.accepts == 2


async def test_bytes_arriving_on_an_idle_connection_retire_it(origin: OriginServer, make_source: SourceFactory) -> None:
    origin.route("/late.jpg", late_bytes(JPEG, response_bytes(SMUGGLED), delay_s=0.05))
    origin.route("/other.jpg", body(OTHER))
    source = make_source(allowed=prefix(origin))
    assert (await source.fetch(named(origin, "/late.jpg"))).data == JPEG
    await anyio.sleep(0.3)  # the unrequested response arrives while the connection is idle in the pool
    assert (await source.fetch(named(origin, "/other.jpg"))).data == OTHER
    assert origin.accepts == 2


async def test_a_body_cut_short_retires_the_connection(origin: OriginServer, make_source: SourceFactory) -> None:
    origin.route("/cut.jpg", short_body(len(JPEG) + 100, JPEG))
    origin.route("/other.jpg", body(OTHER))
    source = make_source(allowed=prefix(origin))
    await expect(UpstreamError, 502, source, named(origin, "/cut.jpg"))
    assert (await source.fetch(named(origin, "/other.jpg"))).data == OTHER


@PAUSES
async def test_a_body_longer_than_its_length_retires_the_connection(
    pause_s: float, origin: OriginServer, make_source: SourceFactory
) -> None:
    # 50 KB past the declared length: more than one read, so part of it is still on the socket.
    origin.route("/long.jpg", body(bytes(LIMIT + 50_000), length=LIMIT - 1))
    origin.route("/other.jpg", body(OTHER))
    source = make_source(allowed=prefix(origin))
    assert len((await source.fetch(named(origin, "/long.jpg"))).data) == LIMIT - 1
    await anyio.sleep(pause_s)
    assert (await source.fetch(named(origin, "/other.jpg"))).data == OTHER
    assert origin.accepts == 2


async def test_a_body_left_unread_retires_the_connection(origin: OriginServer, make_source: SourceFactory) -> None:
    # Refused at the cap while the body is still coming: the rest must never be read as an answer.
    origin.route("/endless.jpg", chunked(repeat(b"x" * 16384, 100)))
    origin.route("/other.jpg", body(OTHER))
    source = make_source(allowed=prefix(origin))
    await expect(SourceTooLarge, 413, source, named(origin, "/endless.jpg"))
    assert (await source.fetch(named(origin, "/other.jpg"))).data == OTHER
    assert origin.accepts == 2


@PAUSES
@pytest.mark.parametrize("writes", [1, 2])
async def test_an_extra_response_over_tls_is_never_read_as_the_next_answer(
    writes: int, pause_s: float, tls_origin: OriginServer, client_context: ssl.SSLContext, make_source: SourceFactory
) -> None:
    # Two writes are two TLS records: the second can wait inside the TLS layer, where the socket no
    # longer shows it.
    tls_origin.route("/smuggle.jpg", with_extra_response(JPEG, SMUGGLED, writes=writes))
    tls_origin.route("/other.jpg", body(OTHER))
    source = make_source(allowed=prefix(tls_origin), ssl_context=client_context)
    assert (await source.fetch(named(tls_origin, "/smuggle.jpg"))).data == JPEG
    await anyio.sleep(pause_s)
    assert (await source.fetch(named(tls_origin, "/other.jpg"))).data == OTHER
    assert tls_origin.accepts == 2
    await anyio.sleep(REUSE_QUIET_S)
    assert (await source.fetch(named(tls_origin, "/other.jpg"))).data == OTHER
    assert tls_origin.accepts == 2
