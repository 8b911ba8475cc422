"""Per-process caches: a byte-bounded TTL LRU, and single flight per key.

``TTLCache`` holds finished values only (rendered thumbnails, fetched sources); errors are
never stored. ``SingleFlight`` lets concurrent callers for one key share one computation:
the first caller runs it, the others wait for its result, and a failure is handed to every
waiter at once but remembered by nobody.

Both are plain event-loop objects (no locks): every operation is O(1) amortised, so
eviction never stalls the loop.
"""

from __future__ import annotations

import copy
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import anyio

V = TypeVar("V")


@dataclass(slots=True)
class _Entry(Generic[V]):
    value: V
    size: int
    expires_at: float


class TTLCache(Generic[V]):
    """A least-recently-used map bounded in bytes, whose entries expire ``ttl_s`` after they were stored.

    ``max_bytes`` of 0 (or a TTL of 0) turns the cache off. A value larger than the whole
    cache is not stored. Expired entries are dropped on the next access, oldest first.
    ``on_evict(reason)`` is called with ``"size"``, ``"ttl"`` or ``"memory"`` for each entry dropped.
    """

    def __init__(
        self,
        max_bytes: int,
        ttl_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_evict: Callable[[str], None] | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self._clock = clock
        self._on_evict = on_evict
        self._lru: OrderedDict[str, _Entry[V]] = OrderedDict()  # least recently used first
        # With one TTL for all entries, storage order is expiry order: the oldest expires first.
        self._by_age: OrderedDict[str, float] = OrderedDict()
        self.bytes = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0 and self.ttl_s > 0

    def __len__(self) -> int:
        return len(self._lru)

    def __contains__(self, key: str) -> bool:
        return self.get(key, touch=False) is not None

    def get(self, key: str, *, touch: bool = True) -> V | None:
        """Return the live value for ``key`` (and mark it recently used), or None."""
        self._expire(self._clock())
        entry = self._lru.get(key)
        if entry is None:
            return None
        if touch:
            self._lru.move_to_end(key)
        return entry.value

    def put(self, key: str, value: V, size: int) -> bool:
        """Store ``value`` as ``size`` bytes; evict least recently used entries to fit. Return True if stored."""
        now = self._clock()
        self._expire(now)
        self._discard(key)
        if not self.enabled or size > self.max_bytes:
            return False
        self._lru[key] = _Entry(value, size, now + self.ttl_s)
        self._by_age[key] = now + self.ttl_s
        self.bytes += size
        while self.bytes > self.max_bytes:
            oldest = next(iter(self._lru))
            self._discard(oldest)
            self._evicted("size")
        return True

    def shrink_to(self, max_bytes: int, *, keep: V | None = None) -> None:
        """Drop least recently used entries, all but ``keep``, until the cache holds at most ``max_bytes``."""
        for key in [key for key, entry in self._lru.items() if entry.value is not keep]:
            if self.bytes <= max(0, max_bytes):
                return
            self._discard(key)
            self._evicted("memory")

    def clear(self) -> None:
        self._lru.clear()
        self._by_age.clear()
        self.bytes = 0

    def _expire(self, now: float) -> None:
        while self._by_age:
            key, expires_at = next(iter(self._by_age.items()))
            if expires_at > now:
                return
            self._discard(key)
            self._evicted("ttl")

    def _discard(self, key: str) -> None:
        entry = self._lru.pop(key, None)
        if entry is not None:
            del self._by_age[key]
            self.bytes -= entry.size

    def _evicted(self, reason: str) -> None:
        if self._on_evict is not None:
            self._on_evict(reason)


class _Call(Generic[V]):
    __slots__ = ("abandoned", "done", "error", "value")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.value: V | None = None
        self.error: Exception | None = None
        self.abandoned = False  # the leader was cancelled before it finished


class SingleFlight(Generic[V]):
    """At most one running computation per key; concurrent callers share its outcome."""

    def __init__(self) -> None:
        self._calls: dict[str, _Call[V]] = {}

    def __len__(self) -> int:
        return len(self._calls)

    async def run(self, key: str, compute: Callable[[], Awaitable[V]]) -> tuple[V, bool]:
        """Return ``(value, joined)``: the result of ``compute()`` for ``key``, and whether it was another caller's.

        Raise what ``compute`` raised, in every caller that was waiting for it. If the caller
        running ``compute`` is cancelled, one of the waiters runs it again.
        """
        while (call := self._calls.get(key)) is not None:
            await call.done.wait()
            if call.abandoned:
                continue
            if call.error is not None:
                raise _clone(call.error) from call.error
            return call.value, True  # type: ignore[return-value]
        call = _Call[V]()
        self._calls[key] = call
        try:
            value = await compute()
            call.value = value
        except Exception as exc:
            call.error = exc
            raise
        except BaseException:
            call.abandoned = True
            raise
        finally:
            del self._calls[key]
            call.done.set()
        return value, False


def _clone(exc: Exception) -> Exception:
    """A copy of a shared exception, so each waiter raises (and decorates) its own object."""
    try:
        return copy.copy(exc)
    except Exception:  # pragma: no cover - an exception type that cannot be rebuilt from its args
        return exc
