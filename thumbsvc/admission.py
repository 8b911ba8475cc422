"""Admission control: bounded render slots, a bounded wait queue with a deadline, a memory budget.

A request takes its place with ``admit()`` *before* its source is loaded, so overload is
shed before any origin traffic: when ``slots + queue_size`` requests are already admitted,
or when the recent render times say the queue ahead of it would outlast its deadline, the
next one gets ``Overloaded`` (503) at once. It holds a render slot only around pixel work
(``run``), and waits for one at most ``timeout_s``; past that it gets ``Overloaded`` too.
Nothing here ever waits without a bound.

Render slots are our own ``CapacityLimiter``; the worker threads run under a second limiter of
the same size (a task cannot hold two tokens of one limiter), never under anyio's default
40-thread limiter.

The memory budget bounds the sum of the estimated working memory (``thumbsvc.memory``) of the
renders running at once: a render waits, first come first served and within the same deadline,
until it fits beside those running; one larger than the whole budget runs alone, never refused.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import TypeVar, TypeVarTuple

import anyio
import anyio.to_thread
from anyio import CapacityLimiter

from thumbsvc.errors import Overloaded
from thumbsvc.memory import release_freed_memory
from thumbsvc.metrics import Metrics

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

# readyz turns not-ready when the queue beyond the slots is fuller than this.
READY_QUEUE_FRACTION = 0.8
# Weight of the latest render in the moving average that predicts queue waits.
RENDER_TIME_WEIGHT = 0.2
# After a render estimated at this many bytes or more, freed heap pages go back to the kernel at once.
TRIM_MIN_BYTES = 64_000_000


class Admission:
    """Render slots and the queue in front of them, for one process."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        slots: int,
        queue_size: int,
        timeout_s: float,
        memory_budget: int = 0,
        retry_after_s: int = 1,
    ) -> None:
        self.metrics = metrics
        self.slots = slots
        self.queue_size = queue_size
        self.timeout_s = timeout_s
        self.memory_budget = memory_budget  # bytes; 0: no budget
        self.retry_after_s = retry_after_s
        self.limiter = CapacityLimiter(slots)
        self._threads = CapacityLimiter(slots)
        self.admitted = 0  # holding a place: loading a source, waiting for a slot, or rendering
        self.active = 0  # holding a render slot
        self.draining = False  # readyz says not ready; requests are still served
        self.closed = False  # shutting down: new requests are refused
        self._render_s: float | None = None  # moving average of recent render times
        self.memory_in_use = 0  # estimated bytes of the renders granted their share
        self._memory_waiters: deque[tuple[int, anyio.Event]] = deque()

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

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Hold a place in the queue for the body of the ``with``; raise ``Overloaded`` if there is none."""
        if self.closed:
            self._reject("draining", "shutting down")
        if self.admitted >= self.capacity:
            self._reject("queue_full", f"{self.admitted} admitted, capacity {self.capacity}")
        expected_s = self.expected_wait_s()
        if expected_s > self.timeout_s:
            # It would wait out its deadline and fail anyway: fail it now, before it costs anything.
            self._reject("queue_wait", f"expected wait {expected_s:.2f} s is over {self.timeout_s} s")
        self.admitted += 1
        self._update()
        try:
            yield
        finally:
            self.admitted -= 1
            self._update()

    async def run(self, func: Callable[[*Ts], T], *args: *Ts, nbytes: int = 0) -> T:
        """Wait (up to the deadline) for ``nbytes`` of the memory budget and a render slot; run ``func`` in a thread.

        Raise ``Overloaded`` if the wait would pass the deadline. Call it inside ``admit()``.
        """
        started = anyio.current_time()
        reserved = slot = False
        try:
            with anyio.move_on_after(self.timeout_s):
                await self._reserve_memory(nbytes)
                reserved = True
                await self.limiter.acquire()
                slot = True
            self.metrics.queue_wait_seconds.observe(anyio.current_time() - started)
            if not slot:
                self._reject("queue_timeout", f"no render slot within {self.timeout_s} s")
            self.active += 1
            self._update()
            began = anyio.current_time()
            try:
                if nbytes < TRIM_MIN_BYTES:
                    return await anyio.to_thread.run_sync(func, *args, limiter=self._threads)
                return await anyio.to_thread.run_sync(_trimmed, partial(func, *args), limiter=self._threads)
            finally:
                self._observe_render(anyio.current_time() - began)
                self.active -= 1
                self.limiter.release()
                self._update()
        finally:
            if reserved:
                self._release_memory(nbytes)

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

    def _observe_render(self, seconds: float) -> None:
        previous = self._render_s
        self._render_s = seconds if previous is None else previous + RENDER_TIME_WEIGHT * (seconds - previous)

    async def _reserve_memory(self, nbytes: int) -> None:
        """Take ``nbytes`` of the budget, first come first served; a render larger than the budget runs alone."""
        if self.memory_budget <= 0 or nbytes <= 0:
            return
        if not self._memory_waiters and self._fits(nbytes):
            self.memory_in_use += nbytes
            return
        waiter = (nbytes, anyio.Event())
        self._memory_waiters.append(waiter)
        try:
            await waiter[1].wait()
        except BaseException:
            if waiter[1].is_set():  # granted just as we were cancelled: hand it back
                self._release_memory(nbytes)
            else:
                self._memory_waiters.remove(waiter)
                self._grant_memory()
            raise

    def _release_memory(self, nbytes: int) -> None:
        if self.memory_budget <= 0 or nbytes <= 0:
            return
        self.memory_in_use -= nbytes
        self._grant_memory()

    def _grant_memory(self) -> None:
        while self._memory_waiters and self._fits(self._memory_waiters[0][0]):
            nbytes, event = self._memory_waiters.popleft()
            self.memory_in_use += nbytes
            event.set()

    def _fits(self, nbytes: int) -> bool:
        return self.memory_in_use == 0 or self.memory_in_use + nbytes <= self.memory_budget

    def _reject(self, reason: str, detail: str) -> None:
        self.metrics.rejected.labels(reason).inc()
        raise Overloaded(f"{reason}: {detail}", retry_after_s=self.retry_after_s)

    def _update(self) -> None:
        self.metrics.queue_depth.set(self.depth)
        self.metrics.renders_in_progress.set(self.active)


def _trimmed(work: Callable[[], T]) -> T:
    try:
        return work()
    finally:
        release_freed_memory()
