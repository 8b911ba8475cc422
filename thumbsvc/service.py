"""The request path without HTTP: a verified request in, a thumbnail (or an error from errors.py) out.

``Thumbnailer.thumbnail`` reads top to bottom as DESIGN.md's request path::

    parse and verify            parse()            (the signature first, then the options)
    result cache, refusals      thumbnail()        (a cached thumbnail, or a remembered 413/415/422)
    single flight               thumbnail()        (identical requests share one render)
    fetch                       load()             (source cache and single flight; the loaders' own
                                                    concurrency and deadline: sources.FetchGate)
    header                      _render()          (pipeline.HEADER_STEPS in a thread, no render slot:
                                                    every 4xx of the header and options, the memory estimate)
    admit and run the pipeline  _render()          (Admission.run: a render slot, the memory budget; the
                                                    decoded-source cache may hand over the decode step's output)
    store                       _produce()         (the result cache)

Downloads never hold a render slot or a queue place: a request is admitted once its source bytes
are in hand. Caches only ever save work: with any of them on or off every response is
byte-identical, with the same ETag.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter

from thumbsvc import pipeline
from thumbsvc.admission import Admission
from thumbsvc.cache import SingleFlight, TTLCache
from thumbsvc.config import ConfigError, Settings
from thumbsvc.decode import Limits
from thumbsvc.encoding import negotiate
from thumbsvc.errors import (
    BadRequest,
    Forbidden,
    Gone,
    SourceTooLarge,
    ThumbError,
    UnprocessableSource,
    UnsupportedFormat,
)
from thumbsvc.filters import MAX_WATERMARK_BYTES, Watermark
from thumbsvc.geometry import Planner
from thumbsvc.memory import MemoryBudget
from thumbsvc.metrics import Metrics
from thumbsvc.options import RenderOptions
from thumbsvc.pipeline import RENDER_VERSION, Decoded, Job, Step
from thumbsvc.signing import PathSigner
from thumbsvc.sources import FetchGate, SourceImage, Sources, is_remote, is_s3
from thumbsvc.sources.local import LocalSource, lookup_path
from thumbsvc.urls import ThumbPath, build_payload, split_path

if TYPE_CHECKING:
    from thumbsvc.sources.s3 import S3Options
    from thumbsvc.thumbor_options import ThumborURLs

logger = logging.getLogger("thumbsvc")

T = TypeVar("T")

# What an entry costs beyond its bytes (key, ETag, objects), so tiny entries cannot flood the cache.
ENTRY_OVERHEAD_BYTES = 256
# A decoded frame's entry: key, objects, the image's info dict.
DECODED_OVERHEAD_BYTES = 4096
# Refusals remembered at once (each is a key and a small exception object).
REFUSAL_CACHE_BYTES = 4_000_000
# Deterministic refusals of a source or a request: remembered, so a costly bad file is decoded once.
REFUSED = (SourceTooLarge, UnsupportedFormat, UnprocessableSource)


@dataclass(slots=True)
class Record:
    """What one HTTP request cost and where its answer came from: made by the access-log middleware,
    filled by the service, read by the access log, the metrics and the ``Server-Timing`` header."""

    route: str = "other"
    cache: str = "-"  # result cache: HIT, MISS (rendered for this request), JOIN (shared a render), REVALIDATED
    source: str = "-"  # source cache: HIT, MISS, JOIN ("-" when no source was needed)
    fetch_s: float | None = None
    render_s: float | None = None  # pixel work in worker threads (decode and the steps after it)
    error: str = ""  # internal detail of a ThumbError: logged, never sent

    def add_render(self, seconds: float) -> None:
        self.render_s = seconds + (self.render_s or 0.0)


@dataclass(frozen=True, slots=True)
class ThumbRequest:
    path: ThumbPath
    auto_format: str  # the format f:auto negotiated from Accept ("avif", "webp"), "" otherwise
    planner: Planner | None = None  # another grammar's geometry (a thumbor URL's), else thumbsvc's own

    @property
    def options(self) -> RenderOptions:
        return self.path.options

    @property
    def source(self) -> str:
        return self.path.source

    @property
    def vary_accept(self) -> bool:
        return self.options.format == "auto"

    @property
    def expires(self) -> int | None:
        return self.options.expires

    @property
    def cache_key(self) -> str:
        """The thumbnail this asks for: its options without ``exp`` (URLs of one thumbnail with other
        expiries share its render, its cache entry and its ETag), its source, the negotiated format."""
        payload = self.path.payload
        if self.planner is not None:
            return f"{self.planner.name}/{payload}|{self.auto_format}"
        if self.expires is not None:
            payload = build_payload(replace(self.options, expires=None), self.source)
        return f"{payload}|{self.auto_format}"


@dataclass(frozen=True, slots=True)
class Thumbnail:
    data: bytes
    media_type: str
    etag: str
    vary_accept: bool
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class SourceFacts:
    """What the playground shows of a source: upright size, format, bytes."""

    width: int
    height: int
    format: str
    nbytes: int


class Thumbnailer:
    """Verify, fetch and render. One per process; holds the loaders, the caches and admission control."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """``clock`` times the caches' entries, ``wall_clock`` the URLs' ``exp`` (tests move both)."""
        self.metrics = metrics if metrics is not None else Metrics()
        self.wall_clock = wall_clock
        self.expires_leeway_s = settings.expires_leeway_s
        self.limits = Limits(
            max_source_pixels=settings.max_source_pixels,
            max_frames=settings.max_frames,
            max_animation_pixels=settings.max_animation_pixels,
            max_output_px=settings.max_output_px,
        )
        self.max_render_memory = settings.max_render_memory
        self.render_timeout_s = settings.render_timeout_s
        self.signer = PathSigner(settings.signing_keys)
        self.admission = Admission(
            self.metrics,
            slots=settings.render_slots,
            queue_size=settings.queue_size,
            timeout_s=settings.queue_timeout_s,
            memory=MemoryBudget(settings.render_memory_budget),
        )
        # Header steps run in threads of their own, never on anyio's default limiter and never
        # waiting behind the render slots.
        self.header_limiter = CapacityLimiter(settings.render_slots)
        self.results: TTLCache[Thumbnail] = TTLCache(
            settings.cache_bytes, settings.cache_ttl_s, clock=clock, on_evict=partial(self._evicted, "result")
        )
        self.result_flight: SingleFlight[Thumbnail] = SingleFlight()
        self.refusals: TTLCache[ThumbError] = TTLCache(REFUSAL_CACHE_BYTES, settings.refusal_cache_ttl_s, clock=clock)
        self.source_cache: TTLCache[SourceImage] = TTLCache(
            settings.source_cache_bytes,
            settings.source_cache_ttl_s,
            clock=clock,
            on_evict=partial(self._evicted, "source"),
        )
        self.source_flight: SingleFlight[SourceImage] = SingleFlight()
        self.decoded: TTLCache[Decoded] = TTLCache(
            settings.decoded_cache_bytes,
            settings.decoded_cache_ttl_s,
            clock=clock,
            on_evict=partial(self._evicted, "decoded"),
        )
        self.decode_flight: SingleFlight[Decoded] = SingleFlight()
        self.sources = self._make_sources(settings)
        self.watermarks = load_watermarks(settings)
        self.thumbor = _thumbor_urls(settings)

    @staticmethod
    def _make_sources(settings: Settings) -> Sources:
        root = settings.effective_media_root
        local = LocalSource(root, max_bytes=settings.max_source_bytes) if root else None
        remote = None
        if settings.allowed_sources and not settings.dev_mode:
            # Imported only when remote sources are on: httpx and what it loads are 7 MiB of an idle process.
            from thumbsvc.sources.http import FetchPolicy, HttpSource

            remote = HttpSource(
                FetchPolicy(
                    allowed_sources=settings.allowed_sources,
                    allow_private_networks=settings.allow_private_networks,
                    connect_timeout_s=settings.connect_timeout_s,
                    fetch_timeout_s=settings.fetch_timeout_s,
                    max_redirects=settings.max_redirects,
                    max_source_bytes=settings.max_source_bytes,
                )
            )
        s3 = None
        if not settings.dev_mode and any(is_s3(entry.strip()) for entry in settings.allowed_sources):
            # Imported only when a bucket is allowed: obstore and its runtime stay out of other processes.
            try:
                from thumbsvc.sources.s3 import S3Source
            except ModuleNotFoundError as exc:
                raise ConfigError("s3:// sources need the s3 extra: pip install 'thumbsvc[s3]'.") from exc
            from thumbsvc.sources.allowlist import Allowlist

            s3 = S3Source(s3_options(settings), Allowlist.parse(settings.allowed_sources))
        gate = FetchGate(
            max_fetches=settings.fetch_concurrency,
            max_per_host=settings.fetch_concurrency_per_host,
            timeout_s=settings.queue_timeout_s,
        )
        return Sources(local, remote, s3, gate=gate)

    # ---- parse and verify ----

    def parse(self, raw_path: str, accept: str | None) -> ThumbRequest:
        """Given the raw request path, return the verified request; the Accept header is negotiated here, once.

        Raise ``BadRequest`` for a malformed path and ``Forbidden`` for a bad signature.
        The signature is checked on the exact bytes that arrived, before any option is trusted.
        """
        signature, _, payload = raw_path.lstrip("/").partition("/")
        if not payload or not self.signer.verify(payload, signature):
            raise Forbidden("bad signature", public_message="Invalid signature")
        try:
            path = split_path(raw_path)
        except ValueError as exc:
            raise BadRequest(str(exc), public_message=f"Malformed thumbnail URL: {exc}") from exc
        expires = path.options.expires
        if expires is not None and self.wall_clock() >= expires + self.expires_leeway_s:
            raise Gone(f"exp:{expires} has passed")
        box_w, box_h = path.options.box
        limit = self.limits.max_output_px
        if (box_w or 0) > limit or (box_h or 0) > limit:
            raise BadRequest(f"box {box_w}x{box_h}", public_message=f"Output size is limited to {limit} px a side")
        return ThumbRequest(path, negotiate(accept) if path.options.format == "auto" else "")

    def is_thumbor(self, raw_path: str) -> bool:
        """True when thumbor's URLs are on (``THUMBSVC_THUMBOR_KEY``) and the path is shaped like one."""
        return self.thumbor is not None and self.thumbor.recognises(raw_path)

    def parse_thumbor(self, raw_path: str) -> ThumbRequest:
        """Given a raw thumbor path, return the verified request, mapped onto the pipeline
        (docs/migrating.md). Raise ``Forbidden`` for a bad signature or a refused ``unsafe`` path and
        ``BadRequest`` for the rest, before any work."""
        assert self.thumbor is not None, "thumbor URLs are off"
        path, planner = self.thumbor.parse(raw_path)
        return ThumbRequest(path, "", planner)

    def sign(self, source: str, options: RenderOptions) -> str:
        """Given a source and options, return the signed path (``/{sig}/{options}/{source}``) this service serves."""
        payload = build_payload(options, source)
        return f"/{self.signer.sign(payload)}/{payload}"

    # ---- the thumbnail ----

    async def thumbnail(self, request: ThumbRequest, record: Record) -> Thumbnail:
        """Return the thumbnail: from the result cache, from an identical request in flight, or rendered now.

        Raise ``Overloaded`` when admission refuses the work, a remembered refusal, and the source
        and render errors otherwise.
        """
        key = request.cache_key
        cached = self.results.get(key)
        if cached is not None:
            self.metrics.cache_hits.labels("result").inc()
            record.cache = "HIT"
            return cached
        self.metrics.cache_misses.labels("result").inc()
        self._raise_refusal(key, request.source)
        thumb, joined = await self.result_flight.run(key, partial(self._produce, request, record))
        if joined:
            self.metrics.flight_joins.labels("result").inc()
        record.cache = "JOIN" if joined else "MISS"
        return thumb

    async def etag(self, request: ThumbRequest, record: Record) -> str:
        """Return the ETag ``thumbnail`` would answer with, without rendering.

        From the result cache if the thumbnail is there (``record.cache`` HIT), else from the
        source's validator (REVALIDATED): the source is loaded (into the source cache), never
        decoded. So a conditional request for a thumbnail the client holds costs a fetch, not a
        render. Raise the source errors.
        """
        cached = self.results.get(request.cache_key)
        if cached is not None:
            self.metrics.cache_hits.labels("result").inc()
            record.cache = "HIT"
            return cached.etag
        self._raise_refusal(request.cache_key, request.source)
        ref = request.source
        if is_s3(ref) and self.source_cache.get(ref) is None:
            # The object's ETag from a HEAD: its bytes are not transferred.
            validator = await self.sources.revalidate(ref)
        else:
            validator = (await self.load(ref, record)).validator
        record.cache = "REVALIDATED"
        return make_etag(request, validator)

    async def _produce(self, request: ThumbRequest, record: Record) -> Thumbnail:
        self.admission.check()  # overloaded: refused before the fetch and the header probe
        source = await self.load(request.source, record)
        try:
            rendered = await self._render(request, source, record)
        except REFUSED as exc:
            self.refusals.put(request.cache_key, exc, len(request.cache_key) + ENTRY_OVERHEAD_BYTES)
            raise
        thumb = Thumbnail(
            data=rendered.data,
            media_type=rendered.media_type,
            etag=make_etag(request, source.validator),
            vary_accept=request.vary_accept,
            width=rendered.width,
            height=rendered.height,
        )
        self.results.put(request.cache_key, thumb, len(thumb.data) + len(request.cache_key) + ENTRY_OVERHEAD_BYTES)
        self._sizes("result")
        return thumb

    def _raise_refusal(self, key: str, source: str) -> None:
        refusal = self.refusals.get(key) or self.refusals.get(_source_key(source))
        if refusal is not None:
            self.metrics.cache_hits.labels("refusal").inc()
            raise refusal.clone()

    # ---- render: header, admission, the pipeline ----

    async def _render(self, request: ThumbRequest, source: SourceImage, record: Record) -> pipeline.Rendered:
        job = Job(
            source.data,
            request.options,
            self.limits,
            auto_format=request.auto_format,
            deadline=time.monotonic() + self.render_timeout_s,
            watermarks=self.watermarks,
            planner=request.planner,
        )
        self.admission.check()  # again: the queue may have filled while the source was fetched
        await anyio.to_thread.run_sync(self._header, job, request.source, limiter=self.header_limiter)
        if job.decode_bytes > self.max_render_memory:
            raise SourceTooLarge(
                f"render estimated at {job.decode_bytes} bytes is over {self.max_render_memory}",
                public_message="Image too large to render at this size",
            )
        if self.decoded.enabled and job.shares_decode:
            job.decoded = await self._decoded(job, request.source, source, record)
            nbytes = job.finish_bytes
        else:
            nbytes = job.decode_bytes
        run = self._timed(pipeline.run, record, decodes=job.decoded is None)
        await self._admit(run, job, pipeline.pixel_steps(job), nbytes, keep=job.decoded)
        assert record.render_s is not None
        self.metrics.render_seconds.observe(record.render_s)
        return job.result

    def _header(self, job: Job, ref: str) -> None:
        """Probe and plan (in a worker thread): a source's own refusals are remembered for every request of it."""
        try:
            pipeline.run(job, (pipeline.probe,))
        except REFUSED as exc:
            self.refusals.put(_source_key(ref), exc, len(ref) + ENTRY_OVERHEAD_BYTES)
            raise
        pipeline.run(job, (pipeline.plan,))

    async def _decoded(self, job: Job, ref: str, source: SourceImage, record: Record) -> Decoded:
        """The decode step's output for this job: cached, shared with a decode in flight, or decoded now."""
        # The reference too: the cache serves the sizes of one source as they are asked for, not every
        # copy of the same bytes under other names.
        key = f"{job.eighths}|{'YCbCr' if job.planar else '-'}|{source.validator}|{ref}"
        cached = self.decoded.get(key)
        if cached is not None:
            self.metrics.cache_hits.labels("decoded").inc()
            return cached
        self.metrics.cache_misses.labels("decoded").inc()

        async def decode() -> Decoded:
            run = self._timed(pipeline.run, record, decodes=True, renders=False)
            await self._admit(run, job, (pipeline.decode,), job.decode_bytes)
            assert job.decoded is not None
            self.decoded.put(key, job.decoded, job.decoded.nbytes + len(key) + DECODED_OVERHEAD_BYTES)
            self._sizes("decoded")
            return job.decoded

        decoded, joined = await self.decode_flight.run(key, decode)
        if joined:
            self.metrics.flight_joins.labels("decoded").inc()
        return decoded

    async def _admit(
        self, run: Callable[..., Job], job: Job, steps: tuple[Step, ...], nbytes: int, *, keep: Decoded | None = None
    ) -> None:
        """Run ``steps`` of ``job`` through admission with ``nbytes`` of the memory budget.

        The decoded frames kept for later sizes count against the budget first: the least recently
        used ones that this render, beside the renders running, leaves no room for are dropped. The
        budget charges a shared decode only while it runs; the frame it keeps is memory too (two
        24 MP progressive decodes and a kept frame went past the budget). ``keep``, the frame this
        render works from, stays: dropping it would free nothing and make the photo's next size
        decode again.
        """
        budget = self.admission.memory
        if budget.enabled and self.decoded.bytes:
            self.decoded.shrink_to(budget.limit_bytes - budget.in_use - nbytes, keep=keep)
        await self.admission.run(run, job, steps, nbytes=nbytes)

    def _timed(
        self, work: Callable[..., T], record: Record, *, decodes: bool, renders: bool = True
    ) -> Callable[..., T]:
        """Wrap pixel work (run in a worker thread) so its time lands in the record and it is counted."""

        def timed(*args: object) -> T:
            # prometheus-client metrics are thread-safe.
            if decodes:
                self.metrics.decodes.inc()
            if renders:
                self.metrics.renders.inc()
            started = time.perf_counter()
            try:
                return work(*args)
            except BaseException:
                self.metrics.render_errors.inc()
                raise
            finally:
                record.add_render(time.perf_counter() - started)

        return timed

    # ---- fetch ----

    async def load(self, ref: str, record: Record | None = None) -> SourceImage:
        """Return the source's bytes: from the source cache, from an identical fetch in flight, or fetched now."""
        record = record if record is not None else Record()
        cached = self.source_cache.get(ref)
        if cached is not None:
            self.metrics.cache_hits.labels("source").inc()
            record.source = "HIT"
            return cached
        self.metrics.cache_misses.labels("source").inc()
        source, joined = await self.source_flight.run(ref, partial(self._fetch, ref, record))
        if joined:
            self.metrics.flight_joins.labels("source").inc()
            record.source = "JOIN"
        return source

    async def _fetch(self, ref: str, record: Record) -> SourceImage:
        kind = "remote" if is_remote(ref) or is_s3(ref) else "local"
        started = time.perf_counter()
        source = await self.sources.fetch(ref)
        record.source = "MISS"
        record.fetch_s = time.perf_counter() - started
        self.metrics.fetch_seconds.labels(kind).observe(record.fetch_s)
        self.metrics.source_bytes.labels(kind).inc(len(source.data))
        self.source_cache.put(ref, source, len(source.data) + len(ref) + ENTRY_OVERHEAD_BYTES)
        self._sizes("source")
        return source

    async def describe(self, source: str) -> SourceFacts:
        """Given a source reference, return its upright size and format from its header (nothing decoded).

        Raise the source and header errors.
        """
        fetched = await self.load(source)
        job = Job(fetched.data, RenderOptions(), self.limits)
        await anyio.to_thread.run_sync(pipeline.run, job, (pipeline.probe,), limiter=self.header_limiter)
        width, height = job.upright
        return SourceFacts(width, height, job.opened.format or "", len(fetched.data))

    # ---- bookkeeping ----

    def _evicted(self, name: str, reason: str) -> None:
        self.metrics.cache_evictions.labels(name, reason).inc()
        self._sizes(name)

    def _sizes(self, name: str) -> None:
        cache: TTLCache[Thumbnail] | TTLCache[SourceImage] | TTLCache[Decoded] = (
            self.results if name == "result" else self.source_cache if name == "source" else self.decoded
        )
        self.metrics.cache_bytes.labels(name).set(cache.bytes)
        self.metrics.cache_entries.labels(name).set(len(cache))

    async def aclose(self) -> None:
        for name, cache in (("result", self.results), ("source", self.source_cache), ("decoded", self.decoded)):
            cache.clear()
            self._sizes(name)
        self.refusals.clear()
        await self.sources.aclose()


def s3_options(settings: Settings) -> S3Options:
    """Given the settings, return the S3 loader's options; path-style addressing defaults to on with an endpoint."""
    from thumbsvc.sources.s3 import S3Options

    path_style = settings.s3_path_style
    return S3Options(
        endpoint=settings.s3_endpoint.rstrip("/") if settings.s3_endpoint else None,
        region=settings.s3_region,
        path_style=settings.s3_endpoint is not None if path_style is None else path_style,
        max_bytes=settings.max_source_bytes,
        connect_timeout_s=settings.connect_timeout_s,
        fetch_timeout_s=settings.fetch_timeout_s,
    )


def load_watermarks(settings: Settings) -> dict[str, Watermark]:
    """Given settings, return the operator's watermarks loaded from the media root.

    Raise ``ConfigError`` naming ``THUMBSVC_WATERMARKS`` when one cannot be read or used: a bad
    definition stops start-up instead of answering every request that names it with an error.
    """
    if not settings.watermarks:
        return {}
    root = settings.effective_media_root
    if root is None:
        raise ConfigError("Config 'THUMBSVC_WATERMARKS' needs THUMBSVC_MEDIA_ROOT: watermarks are files under it.")
    from thumbsvc.filters import Watermark

    loaded = {}
    for spec in settings.watermarks:
        try:
            with open(lookup_path(root, spec.path), "rb") as handle:
                data = handle.read(MAX_WATERMARK_BYTES + 1)
            loaded[spec.name] = Watermark.load(spec, data)
        except (OSError, ThumbError, ValueError) as exc:
            reason = exc.public_message if isinstance(exc, ThumbError) else str(exc)
            raise ConfigError(f"Config 'THUMBSVC_WATERMARKS': watermark {spec.name!r} ({spec.path}): {reason}") from exc
    return loaded


def _thumbor_urls(settings: Settings) -> ThumborURLs | None:
    if not settings.thumbor_key:
        return None
    from thumbsvc.thumbor_options import ThumborURLs

    return ThumborURLs(
        settings.thumbor_key,
        allow_unsafe=settings.thumbor_allow_unsafe,
        sources=settings.thumbor_sources,
        max_output_px=settings.max_output_px,
    )


def _source_key(ref: str) -> str:
    return f"source|{ref}"


def make_etag(request: ThumbRequest, validator: str) -> str:
    """A strong ETag from the inputs only: same URL and source give the same tag on every instance."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (RENDER_VERSION, request.cache_key, validator):
        digest.update(part.encode("utf-8") + b"\x00")
    return f'"{digest.hexdigest()}"'
