"""Helpers for the load and metrics tests: a real uvicorn on a loopback port, and reading /metrics.

Import as ``from tests.live import ...``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import ASGIApp


def sample(text: str, name: str, **labels: str) -> float:
    """Return the value of the sample ``name{labels}`` in Prometheus text; raise KeyError if it is absent."""
    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.name == name and all(item.labels.get(k) == v for k, v in labels.items()):
                return float(item.value)
    raise KeyError(f"{name}{labels} not in the metrics")


@contextmanager
def serve_in_thread(app: ASGIApp) -> Iterator[str]:
    """Run ``app`` under a real uvicorn on 127.0.0.1 (an ephemeral port) in a thread; yield its base URL."""
    # Name the protocol: asyncio sets TCP_NODELAY on accepted connections only for IPPROTO_TCP sockets.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_in_process(env: Mapping[str, str], *args: str, log: Path | None = None) -> Iterator[tuple[str, int]]:
    """Run ``thumbsvc serve`` in a child process on a loopback port; yield its base URL and pid.

    ``env`` holds the THUMBSVC_* settings (the parent's THUMBSVC_* variables are not passed on).
    The child is stopped with SIGTERM (then SIGKILL) when the block ends, unless it has already exited.
    """
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("THUMBSVC_", "PROMETHEUS_"))}
    environ.update(env)
    out = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "thumbsvc.cli", "serve", "--host", "127.0.0.1", "--port", str(port), *args],
        env=environ,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, process)
        yield base, process.pid
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if log is not None:
            out.close()  # type: ignore[union-attr]


def wait_until_up(base: str, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"thumbsvc serve exited with {process.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("thumbsvc serve did not start")


def rss_bytes(pid: int) -> int:
    """Resident set size of a process and its children (uvicorn workers), from /proc."""
    total = 0
    for member in [pid, *children(pid)]:
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except FileNotFoundError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return found
    for task in tasks:
        try:
            kids = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
        except FileNotFoundError:
            continue
        for kid in kids:
            found.append(int(kid))
            found.extend(children(int(kid)))
    return found
