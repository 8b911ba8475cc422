"""Admission control for renders: bounded render slots, a bounded wait queue with a deadline, the memory budget.

A request is admitted once its source bytes are in hand (downloads have their own limits:
``sources.FetchGate``), so only pixel work ever holds a place here. ``run`` takes a place,
waits (up to ``timeout_s``) for its share of the memory budget and a render slot, and runs the
work in a worker thread. When ``slots + queue_size`` requests already hold a place, or when the
recent render times say the queue ahead would outlast the deadline, the request gets
``Overloaded`` (503) at once; past the deadline in the queue, it gets ``Overloaded`` too.
Nothing here ever waits without a bound.

Render slots are our own ``CapacityLimiter``; the worker threads run under a second limiter of
the same size (a task cannot hold two tokens of one limiter), never under anyio's default
40-thread limiter.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import TypeVar, TypeVarTuple

import anyio
import anyio.to_thread
from anyio import CapacityLimiter

from thumbsvc.errors import Overloaded
from thumbsvc.memory import MemoryBudget, release_freed_memory
from thumbsvc.metrics import Metrics

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

# readyz turns not-ready when the queue beyond the slots is fuller than this.
READY_QUEUE_FRACTION = 0.8
# After a large render, the process hands its freed heap back once no render has run for this long.
IDLE_TRIM_S = 1.0
# Weight of the latest render in the moving average that predicts queue waits.
RENDER_TIME_WEIGHT = 0.2


class Admission:
    """Render slots and the queue in front of them, for one process."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        slots: int,
        queue_size: int,
        timeout_s: float,
        memory: MemoryBudget | None = None,
        retry_after_s: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.metrics = metrics
        self.clock = clock  # times renders, for the expected wait
        self.slots = slots
        self.queue_size = queue_size
        self.timeout_s = timeout_s
        self.memory = memory if memory is not None else MemoryBudget(0)
        self.retry_after_s = retry_after_s
        self.limiter = CapacityLimiter(slots)
        self._threads = CapacityLimiter(slots)
        self._trimmer = CapacityLimiter(1)
        self.admitted = 0  # holding a place: waiting for a slot, or rendering
        self.active = 0  # holding a render slot
        self.draining = False  # readyz says not ready; requests are still served
        self.closed = False  # shutting down: new requests are refused
        self._render_s: float | None = None  # moving average of recent render times
        self._ended = clock()  # when the latest render ended

    @property
    def capacity(self) -> int:
        return self.slots + self.queue_size

    @property
    def depth(self) -> int:
        """Admitted requests that do not hold a render slot."""
        return self.admitted - self.active

    def ready(self) -> bool:
        """False while draining or when the queue beyond the slots is more than 80 % full."""
        if self.draining or self.closed:
            return False
        return self.admitted - self.slots <= READY_QUEUE_FRACTION * self.queue_size

    async def run(self, func: Callable[[*Ts], T], *args: *Ts, nbytes: int = 0) -> T:
        """Take a place, wait (up to the deadline) for ``nbytes`` of the memory budget and a render slot,
        and run ``func(*args)`` in a worker thread; return its result.

        Raise ``Overloaded`` if there is no place, or if the wait would pass the deadline.
        """
        self._check_place()
        self.admitted += 1
        self._changed()
        try:
            return await self._run(func, *args, nbytes=nbytes)
        finally:
            self.admitted -= 1
            self._changed()

    async def _run(self, func: Callable[[*Ts], T], *args: *Ts, nbytes: int) -> T:
        started = anyio.current_time()
        reserved = slot = False
        try:
            with anyio.move_on_after(self.timeout_s):
                await self.memory.reserve(nbytes)
                reserved = True
                await self.limiter.acquire()
                slot = True
            self.metrics.queue_wait_seconds.observe(anyio.current_time() - started)
            if not slot:
                raise Overloaded(f"no render slot within {self.timeout_s} s", reason="queue_timeout")
            self.active += 1
            self._changed()
            began = self.clock()
            try:
                return await anyio.to_thread.run_sync(partial(func, *args), limiter=self._threads)
            finally:
                self._ended = self.clock()
                self._observe_render(self._ended - began)
                self.memory.rendered(nbytes)
                self.active -= 1
                self.limiter.release()
                self._changed()
        finally:
            if reserved:
                self.memory.release(nbytes)

    def check(self) -> None:
        """Raise ``Overloaded`` now if ``run`` would refuse a request now (no place, or a wait past the deadline).

        For the work before admission (a fetch, a header probe): under overload a request is refused
        before it costs that, not after. ``run`` checks again when it takes its place.
        """
        self._check_place()

    def _check_place(self) -> None:
        if self.closed:
            raise Overloaded("shutting down", reason="draining", retry_after_s=self.retry_after_s)
        if self.admitted >= self.capacity:
            raise Overloaded(
                f"{self.admitted} admitted, capacity {self.capacity}",
                reason="queue_full",
                retry_after_s=self.retry_after_s,
            )
        expected_s = self.expected_wait_s()
        if expected_s > self.timeout_s:
            # It would wait out its deadline and fail anyway: fail it now, before it costs anything.
            raise Overloaded(
                f"expected wait {expected_s:.2f} s is over {self.timeout_s} s",
                reason="queue_wait",
                retry_after_s=self.retry_after_s,
            )

    def expected_wait_s(self) -> float:
        """How long a request admitted now would wait for a render slot, from the recent render times.

        The requests ahead of it that hold no slot (``depth``) start as slots free up; each
        takes about the recent average. Zero while a slot is free or before any render.
        """
        free = self.slots - self.active
        ahead = self.depth - free + 1
        if ahead <= 0 or self._render_s is None:
            return 0.0
        return ahead / self.slots * self._render_s

    async def trim_when_idle(self, idle_s: float = IDLE_TRIM_S) -> None:
        """Run for the app's lifetime: once no render has run for ``idle_s`` after a large one, hand
        the heap it freed back to the kernel (``release_freed_memory``, in a thread of its own).

        Trimming right after every large render made the next render fault its pages in again
        (about 1 ms a W1 thumbnail, docs/decisions.md): a busy process keeps its heap for the next
        render, an idle one gives it back.
        """
        while True:
            await anyio.sleep(idle_s)
            if self.memory.untrimmed and self.active == 0 and self.clock() - self._ended >= idle_s:
                self.memory.untrimmed = False
                await anyio.to_thread.run_sync(release_freed_memory, limiter=self._trimmer)
                self.metrics.memory_trims.inc()

    def _observe_render(self, seconds: float) -> None:
        previous = self._render_s
        self._render_s = seconds if previous is None else previous + RENDER_TIME_WEIGHT * (seconds - previous)

    def _changed(self) -> None:
        self.metrics.queue_depth.set(self.depth)
        self.metrics.renders_in_progress.set(self.active)
