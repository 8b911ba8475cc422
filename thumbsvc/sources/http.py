"""HTTP(S) origins: one pooled httpx client per process, guarded at connect time.

Every fetch, and every redirect hop, goes through the same three fences:

1. the URL must be allowed by ``THUMBSVC_ALLOWED_SOURCES`` (``allowlist.py``);
2. when a connection is opened, the host is resolved (in a worker thread, with a
   deadline) and *every* address must be globally routable or inside
   ``THUMBSVC_ALLOW_PRIVATE_NETWORKS`` (``netguard.py``); the socket then goes to
   the address that was checked, so a second DNS answer (rebinding) cannot swap it.
   The connection pool is keyed by host name, so ``Host`` and TLS SNI/certificate
   checks use the name from the URL;
3. the download has a total deadline and a byte cap that holds whatever the
   ``Content-Length`` says and however the body is compressed.

A pooled connection is reused only after an exchange that ended with nothing more on
it (``pool.py``): an origin that sends an extra response, or more bytes than it
declared, would otherwise decide what the next source from that host is.

Origin answers map to our errors: 404/410 -> ``SourceNotFound``; any other 4xx ->
``UpstreamError`` (a 401/403 means *we* are not let in: an origin problem, and a 502
is not cached by a CDN, where a 404 would be); 5xx, bad TLS, refused connections,
broken HTTP and too many redirects -> ``UpstreamError``; deadlines -> ``UpstreamTimeout``.
"""

from __future__ import annotations

import re
import socket
import ssl
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from ipaddress import ip_address
from typing import Any

import anyio
import anyio.to_thread
import httpcore
import httpx
from anyio import CapacityLimiter

from thumbsvc import __version__
from thumbsvc.errors import BadRequest, Forbidden, SourceNotFound, SourceTooLarge, UpstreamError, UpstreamTimeout
from thumbsvc.sources import SourceImage
from thumbsvc.sources.allowlist import SCHEMES, Allowlist
from thumbsvc.sources.netguard import AddressGuard, IPAddress, parse_networks
from thumbsvc.sources.pool import CleanReusePool

USER_AGENT = f"thumbsvc/{__version__} (image thumbnailer)"
_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*):")
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
DNS_THREADS = 16

# Given a host name and a port, return its addresses as strings. Blocking: runs in a worker thread.
Resolver = Callable[[str, int], Sequence[str]]


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchPolicy:
    """What the HTTP loader needs to know: which URLs and networks, how long, how far, how much."""

    allowed_sources: tuple[str, ...]  # THUMBSVC_ALLOWED_SOURCES entries
    allow_private_networks: tuple[str, ...]  # CIDR opt-ins
    connect_timeout_s: float
    fetch_timeout_s: float
    max_redirects: int
    max_source_bytes: int


def resolve_host(host: str, port: int) -> list[str]:
    """Given a host name and port, return every address it resolves to (``getaddrinfo``, blocking)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to checked addresses.

    ``connect_tcp`` receives the host name of the URL. It resolves the name, refuses
    the whole host with ``Forbidden`` if any answer is not allowed, and hands the
    checked addresses (never the name) to the inner backend.
    """

    def __init__(
        self,
        guard: AddressGuard,
        *,
        resolver: Resolver = resolve_host,
        inner: httpcore.AsyncNetworkBackend | None = None,
        resolve_timeout_s: float = 3.0,
    ) -> None:
        self.guard = guard
        self.resolver = resolver
        self.inner = inner or httpcore.AnyIOBackend()
        self.resolve_timeout_s = resolve_timeout_s
        self._limiter = CapacityLimiter(DNS_THREADS)

    async def lookup(self, host: str, port: int) -> list[IPAddress]:
        """Given a host, return its addresses; raise ``Forbidden`` if any of them may not be connected to."""
        try:
            addresses = [ip_address(host)]
        except ValueError:
            addresses = [ip_address(answer) for answer in await self._resolve(host, port)]
        for address in addresses:
            reason = self.guard.refusal(address)
            if reason is not None:
                raise Forbidden(f"{host} resolves to {address} ({reason})", public_message="Source not allowed")
        return addresses

    async def _resolve(self, host: str, port: int) -> Sequence[str]:
        try:
            with anyio.fail_after(self.resolve_timeout_s):
                answers = await anyio.to_thread.run_sync(
                    self.resolver, host, port, limiter=self._limiter, abandon_on_cancel=True
                )
        except TimeoutError as exc:
            raise UpstreamTimeout(f"resolving {host} took over {self.resolve_timeout_s} s") from exc
        except (OSError, UnicodeError) as exc:
            raise UpstreamError(f"cannot resolve {host}: {exc}") from exc
        if not answers:
            raise UpstreamError(f"{host} has no addresses")
        return answers

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self.lookup(host, port)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise UpstreamError("unix sockets are not origins")

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


class _CoreStream(httpx.AsyncByteStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._stream:
            yield part

    async def aclose(self) -> None:
        await self._stream.aclose()


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport over a ``CleanReusePool`` whose connections go through ``GuardedBackend``.

    httpcore errors are left as they are; ``HttpSource`` maps them to ours.
    """

    def __init__(self, backend: GuardedBackend, *, ssl_context: ssl.SSLContext) -> None:
        self._pool = CleanReusePool(backend, ssl_context=ssl_context)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        response = await self._pool.handle_async_request(core_request)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_CoreStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


@contextmanager
def map_transport_errors(url: httpx.URL) -> Iterator[None]:
    """Translate httpcore/httpx failures into ``UpstreamTimeout`` or ``UpstreamError``."""
    try:
        yield
    except (httpcore.TimeoutException, httpx.TimeoutException, TimeoutError) as exc:
        raise UpstreamTimeout(f"{url}: {type(exc).__name__} {exc}") from exc
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol, httpx.HTTPError) as exc:
        raise UpstreamError(f"{url}: {type(exc).__name__} {exc}") from exc
    except (httpx.InvalidURL, ssl.SSLError, OSError) as exc:
        raise UpstreamError(f"{url}: {type(exc).__name__} {exc}") from exc


class _Identity:
    def decode(self, data: bytes, budget: int) -> bytes:
        return data  # the count of bytes read already holds it to the limit

    def finish(self) -> None:
        return None


class _Inflate:
    """zlib/gzip decoding that never produces more than the remaining budget (a gzip bomb stops here)."""

    def __init__(self, wbits: int) -> None:
        self._inflater = zlib.decompressobj(wbits)

    def decode(self, data: bytes, budget: int) -> bytes:
        try:
            out = self._inflater.decompress(data, budget + 1)
        except zlib.error as exc:
            raise UpstreamError(f"bad compressed body: {exc}") from exc
        if len(out) > budget:
            raise SourceTooLarge("decompressed body is over the byte limit")
        return out

    def finish(self) -> None:
        if not self._inflater.eof:
            raise UpstreamError("compressed body ends early")


def _decoder(content_encoding: str) -> _Identity | _Inflate:
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return _Identity()
    if encoding in ("gzip", "x-gzip"):
        return _Inflate(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return _Inflate(zlib.MAX_WBITS)
    raise UpstreamError(f"unsupported Content-Encoding {content_encoding!r}")


def redirect_target(url: httpx.URL, response: httpx.Response) -> httpx.URL:
    """Given a URL and its redirect response, return the next URL.

    Raise ``Forbidden`` for a Location with a scheme other than http(s), ``UpstreamError`` if it is missing or broken.
    """
    location = response.headers.get("location")
    if not location:
        raise UpstreamError(f"{url}: redirect {response.status_code} without Location")
    scheme = _SCHEME.match(location)
    if scheme and scheme.group(1).lower() not in SCHEMES:
        raise Forbidden(f"{url}: redirect to a {scheme.group(1)!r} URL", public_message="Source not allowed")
    try:
        return url.join(location).copy_with(fragment=None)
    except httpx.InvalidURL as exc:
        raise UpstreamError(f"{url}: bad redirect Location {location!r}") from exc


async def _check_redirect(response: httpx.Response) -> None:
    if response.status_code in REDIRECT_STATUSES:
        redirect_target(response.request.url, response)


class HttpSource:
    """Fetch ``http(s)://`` sources for one process, under a ``FetchPolicy``.

    ``resolver``, ``network_backend`` and ``ssl_context`` replace the network edge
    (DNS, sockets, trust roots); production leaves them unset.
    """

    def __init__(
        self,
        policy: FetchPolicy,
        *,
        resolver: Resolver = resolve_host,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.policy = policy
        self.allowlist = Allowlist.parse(policy.allowed_sources)
        self.guard = AddressGuard(parse_networks(policy.allow_private_networks))
        self._resolver = resolver
        self._network_backend = network_backend
        self._ssl_context = ssl_context
        self._client: httpx.AsyncClient | None = None

    def _get_client(self) -> httpx.AsyncClient:
        # Made on first use (inside the event loop) and again after aclose(), one per process.
        if self._client is None:
            policy = self.policy
            backend = GuardedBackend(
                self.guard,
                resolver=self._resolver,
                inner=self._network_backend,
                resolve_timeout_s=policy.connect_timeout_s,
            )
            ssl_context = self._ssl_context or httpx.create_ssl_context()
            self._client = httpx.AsyncClient(
                transport=GuardedTransport(backend, ssl_context=ssl_context),
                follow_redirects=False,
                trust_env=False,  # no proxies or .netrc credentials from the environment
                cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])),  # origins cannot set state
                timeout=httpx.Timeout(
                    connect=policy.connect_timeout_s,
                    read=policy.fetch_timeout_s,
                    write=policy.fetch_timeout_s,
                    pool=policy.connect_timeout_s,
                ),
                headers={"User-Agent": USER_AGENT, "Accept": "image/*", "Accept-Encoding": "identity"},
                # httpx works out a redirect's next request even when not following it, and
                # some Location values (``javascript:...``) make that raise: judge them first.
                event_hooks={"response": [_check_redirect]},
            )
        return self._client

    async def fetch(self, ref: str) -> SourceImage:
        """Given an absolute http(s) URL, return its bytes and a validator.

        Raise ``Forbidden`` if the URL (or a redirect target) is not allowed or resolves
        to a forbidden address, ``SourceTooLarge`` past ``max_source_bytes``,
        ``SourceNotFound``, ``UpstreamError`` or ``UpstreamTimeout`` for origin failures.
        """
        try:
            url = httpx.URL(ref)
        except httpx.InvalidURL as exc:
            raise BadRequest(f"bad source URL {ref!r}: {exc}", public_message="Malformed source URL") from exc
        try:
            with anyio.fail_after(self.policy.fetch_timeout_s):
                data = await self._fetch(url)
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{ref}: no answer within {self.policy.fetch_timeout_s} s") from exc
        return SourceImage.of(data)

    async def _fetch(self, url: httpx.URL) -> bytes:
        client = self._get_client()
        for _ in range(self.policy.max_redirects + 1):
            self.allowlist.check(url)
            with map_transport_errors(url):
                async with client.stream("GET", url) as response:
                    if response.status_code in REDIRECT_STATUSES:
                        url = redirect_target(url, response)
                        continue
                    self._check_status(url, response)
                    return await self._read_body(response)
        raise UpstreamError(f"{url}: more than {self.policy.max_redirects} redirects")

    @staticmethod
    def _check_status(url: httpx.URL, response: httpx.Response) -> None:
        status = response.status_code
        if status in (200, 203):
            return
        if status in (404, 410):
            raise SourceNotFound(f"{url}: origin answered {status}")
        raise UpstreamError(f"{url}: origin answered {status}")

    async def _read_body(self, response: httpx.Response) -> bytes:
        limit = self.policy.max_source_bytes
        declared = response.headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > limit:
            raise SourceTooLarge(f"Content-Length {declared} is over {limit} bytes")
        decoder = _decoder(response.headers.get("content-encoding", ""))
        # Kept as the chunks arrive and joined once: one copy of the body, where a growing buffer
        # copied it as it grew and again into bytes.
        parts: list[bytes] = []
        received = kept = 0
        async for chunk in response.aiter_raw():
            received += len(chunk)
            if received > limit:
                raise SourceTooLarge(f"body is over {limit} bytes")
            part = decoder.decode(chunk, limit - kept)
            kept += len(part)
            parts.append(part)
        decoder.finish()
        return b"".join(parts)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
