"""Admission control on its own: slots, the bounded queue, its deadline, the memory budget, draining.

Renders are stood in for by functions that block their worker thread until the test lets
them go, so every state is reached deterministically.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from PIL import Image
from prometheus_client import generate_latest
from starlette.testclient import TestClient

from tests.helpers import decode
from tests.live import sample
from thumbsvc.admission import Admission
from thumbsvc.app import drain_on_sigterm
from thumbsvc.client import URLSigner
from thumbsvc.config import ConfigError, Settings
from thumbsvc.errors import Overloaded
from thumbsvc.memory import TRIM_MIN_BYTES, MemoryBudget
from thumbsvc.metrics import Metrics


def make(memory_budget: int = 0, **kwargs: Any) -> Admission:
    values: dict[str, Any] = {"slots": 1, "queue_size": 1, "timeout_s": 5.0, "memory": MemoryBudget(memory_budget)}
    values.update(kwargs)
    return Admission(Metrics(), **values)


def scrape(admission: Admission) -> str:
    return generate_latest(admission.metrics.registry).decode()


class Gate:
    """A blocking job for a worker thread: runs until ``release()``."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self._go = threading.Event()

    def __call__(self, value: str) -> str:
        self.started.set()
        if not self._go.wait(10):
            raise RuntimeError("gate never opened")
        return value

    def release(self) -> None:
        self._go.set()

    async def wait_started(self) -> None:
        await anyio.to_thread.run_sync(self.started.wait, 10, limiter=anyio.CapacityLimiter(1))


class Clock:
    """A clock that moves only when told: render times are what the test says they are."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def until(condition: Callable[[], bool]) -> None:
    with anyio.fail_after(10):
        while not condition():
            await anyio.sleep(0.005)


def run(main: Callable[[], Awaitable[None]]) -> None:
    anyio.run(main)


def test_a_full_queue_rejects_at_once_and_admitted_requests_complete() -> None:
    admission = make(slots=1, queue_size=1)
    gate = Gate()
    results: list[str] = []

    async def request(value: str) -> None:
        results.append(await admission.run(gate, value))

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(request, "first")
            await gate.wait_started()
            tg.start_soon(request, "second")
            await until(lambda: admission.admitted == 2)
            assert (admission.active, admission.depth) == (1, 1)
            assert not admission.ready()  # the one queue place is taken: above 80 %
            with pytest.raises(Overloaded) as info:
                await admission.run(str.upper, "third")
            assert info.value.status_code == 503
            assert info.value.reason == "queue_full"
            assert info.value.headers["Retry-After"] == "1"
            assert info.value.cache_ttl_s is None
            gate.release()
        assert results == ["first", "second"]
        assert (admission.admitted, admission.active) == (0, 0)
        assert admission.ready()

    run(main)
    text = scrape(admission)
    assert sample(text, "thumbsvc_queue_depth") == 0
    assert sample(text, "thumbsvc_queue_wait_seconds_count") == 2


def test_a_request_waiting_past_its_deadline_gets_503() -> None:
    admission = make(slots=1, queue_size=4, timeout_s=0.2)
    gate = Gate()
    outcome: list[str] = []

    async def holder() -> None:
        outcome.append(await admission.run(gate, "held"))

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(holder)
            await gate.wait_started()
            with pytest.raises(Overloaded) as info:
                await admission.run(str.upper, "never")
            outcome.append(info.value.reason)
            assert admission.admitted == 1  # the expired request gave its place back
            gate.release()

    run(main)
    assert outcome == ["queue_timeout", "held"]


def test_a_request_that_would_outwait_its_deadline_is_refused_at_once() -> None:
    clock = Clock()
    admission = make(slots=1, queue_size=10, timeout_s=30, clock=clock)
    first, second, third = Gate(), Gate(), Gate()

    def slow(gate: Gate) -> str:
        gate("x")
        clock.now += 0.2  # each render takes 0.2 s by this clock
        return "x"

    async def main() -> None:
        assert admission.expected_wait_s() == 0  # no render seen yet
        first.release()
        await admission.run(slow, first)
        async with anyio.create_task_group() as tg:
            assert admission.expected_wait_s() == 0  # a slot is free
            tg.start_soon(admission.run, slow, second)
            await second.wait_started()
            tg.start_soon(admission.run, slow, third)  # waits for the slot
            await until(lambda: admission.depth == 1)
            # Two renders of 0.2 s are ahead of a newcomer.
            expected = admission.expected_wait_s()
            assert expected == pytest.approx(2 * 0.2)
            admission.timeout_s = expected / 2
            with pytest.raises(Overloaded) as info:
                await admission.run(str.upper, "refused")
            assert info.value.reason == "queue_wait"
            admission.timeout_s = expected * 2
            second.release()
            third.release()
            assert await admission.run(str.upper, "admitted") == "ADMITTED"

    run(main)


def test_downloads_hold_no_place_only_renders_do() -> None:
    # A request takes its place when its render is submitted (its source bytes in hand), not before.
    admission = make(slots=1, queue_size=0)
    gate = Gate()

    async def main() -> None:
        assert (admission.admitted, admission.active, admission.depth) == (0, 0, 0)
        async with anyio.create_task_group() as tg:
            tg.start_soon(admission.run, gate, "x")
            await gate.wait_started()
            assert (admission.admitted, admission.active, admission.depth) == (1, 1, 0)
            with pytest.raises(Overloaded):
                await admission.run(str.upper, "y")
            gate.release()

    run(main)


def test_renders_run_in_our_threads_not_anyios_default_limiter() -> None:
    admission = make(slots=2, queue_size=0)
    gate = Gate()

    async def main() -> None:
        default = anyio.to_thread.current_default_thread_limiter()
        async with anyio.create_task_group() as tg:
            tg.start_soon(admission.run, gate, "x")
            await gate.wait_started()
            assert admission.limiter.borrowed_tokens == 1
            assert default.borrowed_tokens == 0
            gate.release()

    run(main)


def test_draining_refuses_new_work_and_is_not_ready() -> None:
    admission = make()
    admission.draining = True
    assert not admission.ready()

    async def main() -> None:
        # Draining alone still serves: the load balancer is being told.
        assert await admission.run(str.upper, "served") == "SERVED"
        admission.closed = True
        with pytest.raises(Overloaded) as info:
            await admission.run(str.upper, "refused")
        assert info.value.reason == "draining"

    run(main)


@pytest.mark.parametrize(
    ("slots", "queue_size", "admitted", "ready"),
    [
        (2, 8, 0, True),
        (2, 8, 8, True),
        (2, 8, 8 + 2, False),
        (2, 10, 2 + 8, True),
        (2, 10, 2 + 9, False),
        (2, 0, 2, True),
    ],
)
def test_ready_until_the_queue_is_more_than_80_percent_full(
    slots: int, queue_size: int, admitted: int, ready: bool
) -> None:
    admission = make(slots=slots, queue_size=queue_size)
    admission.admitted = admitted
    assert admission.ready() is ready


def test_the_memory_budget_keeps_big_renders_apart_first_come_first_served() -> None:
    admission = make(slots=3, queue_size=3, memory_budget=100)
    big, medium, small = Gate(), Gate(), Gate()
    order: list[str] = []

    async def request(gate: Gate, name: str, nbytes: int) -> None:
        order.append(await admission.run(gate, name, nbytes=nbytes))

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(request, big, "big", 80)
            await big.wait_started()
            tg.start_soon(request, medium, "medium", 30)  # does not fit beside big
            await until(lambda: admission.admitted == 2)
            tg.start_soon(request, small, "small", 10)  # would fit, but waits its turn
            await until(lambda: admission.admitted == 3)
            await until(lambda: len(admission.memory._waiters) == 2)
            assert admission.active == 1
            assert not medium.started.is_set() and not small.started.is_set()
            big.release()
            await medium.wait_started()
            await small.wait_started()
            assert admission.active == 2
            medium.release()
            small.release()

    run(main)
    assert order[0] == "big"
    assert sorted(order[1:]) == ["medium", "small"]


def test_a_render_larger_than_the_budget_runs_alone() -> None:
    admission = make(slots=2, queue_size=2, memory_budget=100)

    async def main() -> None:
        assert await admission.run(str.upper, "huge", nbytes=1000) == "HUGE"

    run(main)


def test_a_large_render_runs_alone() -> None:
    admission = make(slots=2, queue_size=2, memory_budget=100)
    seen: list[int] = []

    def work(value: str) -> str:
        seen.append(admission.memory.in_use)
        return value.upper()

    async def main() -> None:
        assert await admission.run(work, "large", nbytes=TRIM_MIN_BYTES) == "LARGE"
        assert admission.memory.in_use == 0

    run(main)
    assert seen == [TRIM_MIN_BYTES]


def test_the_heap_a_large_render_freed_goes_back_once_no_render_runs() -> None:
    admission = make(slots=2, queue_size=2)
    gate = Gate()

    def trims() -> float:
        return sample(scrape(admission), "thumbsvc_memory_trims_total")

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(admission.trim_when_idle, 0.01)
            await admission.run(str.upper, "small", nbytes=TRIM_MIN_BYTES - 1)
            await anyio.sleep(0.1)
            assert trims() == 0  # a small render leaves nothing worth handing back
            # A large render, and another render still running after it: the heap is kept for it.
            tg.start_soon(partial(admission.run, gate, "running", nbytes=1))
            await gate.wait_started()
            await admission.run(str.upper, "large", nbytes=TRIM_MIN_BYTES)
            await anyio.sleep(0.1)
            assert trims() == 0 and admission.memory.untrimmed
            gate.release()
            await until(lambda: trims() == 1)
            assert not admission.memory.untrimmed
            tg.cancel_scope.cancel()

    run(main)


def test_a_memory_wait_is_bounded_by_the_deadline() -> None:
    admission = make(slots=2, queue_size=2, memory_budget=100, timeout_s=0.2)
    gate = Gate()
    outcome: list[str] = []

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(admission.run, gate, "x", nbytes=90))
            await gate.wait_started()
            with pytest.raises(Overloaded) as info:
                await admission.run(str.upper, "y", nbytes=20)
            outcome.append(info.value.reason)
            gate.release()
        # Everything was handed back: a full-budget job runs at once.
        outcome.append(await admission.run(str.upper, "z", nbytes=100))

    run(main)
    assert outcome == ["queue_timeout", "Z"]


def test_the_admission_settings_are_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "THUMBSVC_RENDER_SLOTS": "3",
            "THUMBSVC_QUEUE_SIZE": "5",
            "THUMBSVC_QUEUE_TIMEOUT": "1.5",
            "THUMBSVC_RENDER_MEMORY_BUDGET": "100_000_000",
            "THUMBSVC_DRAIN_DELAY": "4",
            "THUMBSVC_SHUTDOWN_TIMEOUT": "20",
        }
    )
    assert (settings.render_slots, settings.queue_size, settings.queue_timeout_s) == (3, 5, 1.5)
    assert settings.render_memory_budget == 100_000_000
    assert (settings.drain_delay_s, settings.shutdown_timeout_s) == (4.0, 20.0)
    assert Settings(render_slots=3).queue_size == 12


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("THUMBSVC_RENDER_MEMORY_BUDGET", "-2"),
        ("THUMBSVC_DRAIN_DELAY", "-1"),
        ("THUMBSVC_SHUTDOWN_TIMEOUT", "0"),
        ("THUMBSVC_CACHE_TTL", "-5"),
        ("THUMBSVC_SOURCE_CACHE_TTL", "-5"),
    ],
)
def test_bad_admission_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: value})
    assert f"Config '{name}' has value" in str(info.value)


def test_a_memory_budget_smaller_than_every_render_still_renders_one_at_a_time(
    client_factory: Callable[..., TestClient], signer: URLSigner, media_root: Path
) -> None:
    client = client_factory(render_memory_budget=1)
    response = client.get(signer.path("photos/landscape.jpg", width=120))
    assert response.status_code == 200
    assert decode(response.content).size == (120, 90)
    # The header probe of the budget refuses what the render would refuse, before any render.
    (media_root / "notes.jpg").write_bytes(b"not an image at all")
    assert client.get(signer.path("notes.jpg", width=120)).status_code == 415
    assert sample(client.get("/metrics").text, "thumbsvc_renders_total") == 1


def test_the_app_hands_a_large_renders_heap_back_once_idle(
    client_factory: Callable[..., TestClient], signer: URLSigner, media_root: Path
) -> None:
    # 4200x4000 RGBA PNG: estimated at 8 bytes a source pixel and more, over TRIM_MIN_BYTES.
    Image.new("RGBA", (4200, 4000), (200, 40, 40, 255)).save(media_root / "large.png", compress_level=1)
    client = client_factory()
    response = client.get(signer.path("large.png", width=100))
    assert response.status_code == 200 and decode(response.content).size == (100, 95)
    deadline = time.monotonic() + 10
    while sample(client.get("/metrics").text, "thumbsvc_memory_trims_total") != 1:
        assert time.monotonic() < deadline, "no trim within 10 s of the last render"
        time.sleep(0.05)


def test_sigterm_marks_draining_and_reaches_the_servers_handler_after_the_delay() -> None:
    admission = make()
    received: list[tuple[int, float]] = []
    started = time.monotonic()

    def server_handler(signum: int, frame: object) -> None:
        received.append((signum, time.monotonic() - started))

    async def main() -> None:
        restore = drain_on_sigterm(admission, 0.3)
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            await until(lambda: admission.draining)
            assert not admission.ready()
            assert received == []  # still serving: the server has not been told yet
            await until(lambda: bool(received))
        finally:
            restore()
        assert signal.getsignal(signal.SIGTERM) is server_handler

    previous = signal.signal(signal.SIGTERM, server_handler)
    try:
        anyio.run(main)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert [signum for signum, _ in received] == [signal.SIGTERM]
    assert received[0][1] >= 0.3
    assert not admission.closed  # draining is not closing: requests are still admitted
