"""Connections to a real ``thumbsvc serve`` on 127.0.0.1, with raw sockets: what a client may hold, and for how long.

An attacker needs no valid URL to hold a process's sockets: idle connections, a request head trickled a
byte at a time (slowloris), a flood of silent sockets under a low file-descriptor limit. Each test
below is one of those against the real server (``thumbsvc/server.py``), with short deadlines set
through the environment as an operator would.
"""

from __future__ import annotations

import asyncio
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from tests.helpers import TEST_KEY, make_photo
from tests.live import free_port, serve_in_process, wait_until_up
from thumbsvc.client import URLSigner
from thumbsvc.config import FD_RESERVE, ServerSettings, Settings
from thumbsvc.server import GuardedH11Protocol, ServerConfig

HEADER_TIMEOUT_S = 1.0
KEEPALIVE_TIMEOUT_S = 1.0


class RawClient:
    """One TCP connection that speaks just enough HTTP/1.1 to read answers, pipelined ones included."""

    def __init__(self, base: str) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.opened = time.monotonic()
        self.sock = socket.create_connection((host, int(port)), timeout=15)
        self.buffer = b""

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def get(self, target: str | bytes) -> None:
        raw = target.encode() if isinstance(target, str) else target
        self.send(b"GET " + raw + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")

    def response(self) -> tuple[int, dict[str, str], bytes]:
        """Read one response: status, headers (lower-case names), body."""
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(lines[0].split()[1]), headers, body

    def closed_after(self) -> float:
        """Wait until the server closes the connection; return the seconds since it was opened."""
        while self.sock.recv(65536):
            pass
        return time.monotonic() - self.opened

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("the server closed the connection")
        self.buffer += chunk


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("media")
    (root / "small.jpg").write_bytes(make_photo((64, 48)))
    return root


@pytest.fixture(scope="module")
def guarded(media: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A production ``thumbsvc serve`` with one-second deadlines."""
    env = {
        "THUMBSVC_KEY": TEST_KEY,
        "THUMBSVC_MEDIA_ROOT": str(media),
        "THUMBSVC_HEADER_TIMEOUT": str(HEADER_TIMEOUT_S),
        "THUMBSVC_KEEPALIVE_TIMEOUT": str(KEEPALIVE_TIMEOUT_S),
        "THUMBSVC_RENDER_SLOTS": "1",
    }
    log = tmp_path_factory.mktemp("log") / "serve.log"
    with serve_in_process(env, log=log) as (base, _pid):
        yield base


def thumbnail_path(source: str = "small.jpg") -> str:
    return URLSigner(key=TEST_KEY).path(source, width=32)


def test_a_silent_connection_is_closed_at_the_head_deadline(guarded: str) -> None:
    with RawClient(guarded) as client:
        elapsed = client.closed_after()
    assert HEADER_TIMEOUT_S * 0.8 <= elapsed < HEADER_TIMEOUT_S + 5


def test_a_trickled_head_is_cut_off_at_the_deadline(guarded: str) -> None:
    # Slowloris: a byte of the head every 0.2 s. Each byte arrives in time, so only a deadline for the
    # whole head (not one per byte) ends it.
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 200
    with RawClient(guarded) as client:
        client.sock.settimeout(0.2)
        sent = 0
        while sent < len(head):
            try:
                client.send(head[sent : sent + 1])
            except OSError:
                break  # the server closed it while we wrote
            sent += 1
            try:
                if client.sock.recv(1, socket.MSG_PEEK):
                    break
            except TimeoutError:
                continue
        client.sock.settimeout(15)
        status, headers, body = client.response()
        elapsed = time.monotonic() - client.opened
    assert status == 408 and body == b"Request header timeout\n"
    assert headers["connection"] == "close"
    assert 2 < sent < len(head)  # bytes kept coming, and the head was never finished
    assert elapsed < HEADER_TIMEOUT_S + 5


def test_the_deadline_of_a_later_request_starts_at_its_first_byte(guarded: str) -> None:
    with RawClient(guarded) as client:
        client.get("/healthz")
        assert client.response()[0] == 200
        time.sleep(KEEPALIVE_TIMEOUT_S / 4)  # idle, but not for long enough to be closed
        client.send(b"GET /healthz HTTP/1.1\r\n")  # a head begun, never finished
        started = time.monotonic()
        status, _, _ = client.response()
        assert status == 408
        assert HEADER_TIMEOUT_S * 0.8 <= time.monotonic() - started < HEADER_TIMEOUT_S + 5


def test_an_idle_keep_alive_connection_is_closed(guarded: str) -> None:
    with RawClient(guarded) as client:
        client.get("/healthz")
        assert client.response()[:1] == (200,)
        answered = time.monotonic()
        client.closed_after()
        idle = time.monotonic() - answered
    assert KEEPALIVE_TIMEOUT_S * 0.8 <= idle < KEEPALIVE_TIMEOUT_S + 5


def test_a_kept_alive_connection_serves_requests_in_turn(guarded: str) -> None:
    with RawClient(guarded) as client:
        for _ in range(3):
            client.get(thumbnail_path())
            status, headers, _ = client.response()
            assert status == 200 and headers["content-type"] == "image/jpeg"
            time.sleep(KEEPALIVE_TIMEOUT_S / 3)


def test_an_empty_query_string_is_refused(guarded: str) -> None:
    # uvicorn hands the app no query for "a.jpg?" and for "a.jpg" alike; the raw target tells them apart.
    path = thumbnail_path()
    with RawClient(guarded) as client:
        client.get(path + "?")
        status, headers, body = client.response()
        assert (status, body) == (400, b"Thumbnail URLs take no query string\n")
        assert headers["cache-control"].startswith("public, max-age=")
        # Pipelined in one write, each request keeps its own target.
        client.send(b"".join(f"GET {t} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode() for t in (path, path + "?", path)))
        assert [client.response()[0] for _ in range(3)] == [200, 400, 200]
    assert httpx.get(guarded + path + "?x=1").status_code == 400


def test_an_over_long_request_target_answers_414(guarded: str) -> None:
    limit = ServerSettings().max_url_length
    for target in (b"/" + b"a" * limit, b"/" + b"a" * (2 * limit)):
        with RawClient(guarded) as client:
            client.get(target)
            status, headers, body = client.response()
        assert (status, body) == (414, b"Request target too long\n")
        assert headers["connection"] == "close"
    # A request line longer than any head the server would buffer: refused before it ends.
    with RawClient(guarded) as client:
        client.send(b"GET /" + b"a" * (limit + 2000))
        assert client.response()[0] == 414
    # At the limit, the target reaches the application (a bad signature here).
    with RawClient(guarded) as client:
        client.get(b"/" + b"a" * (limit - 1))
        assert client.response()[0] == 403


@pytest.fixture
def low_fd_server(media: Path, tmp_path: Path) -> Iterator[tuple[str, int]]:
    """``thumbsvc serve`` with RLIMIT_NOFILE lowered to 512 in the child, as a container may run it."""
    limit = 512  # room for 256 connections beside config.FD_RESERVE

    def lower_fd_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("THUMBSVC_", "PROMETHEUS_"))}
    env.update(THUMBSVC_KEY=TEST_KEY, THUMBSVC_MEDIA_ROOT=str(media), THUMBSVC_HEADER_TIMEOUT="60")
    with (tmp_path / "serve.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "thumbsvc.cli", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=lower_fd_limit,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(base, process)
            yield base, process.pid
        finally:
            process.terminate()
            process.wait(timeout=20)
    assert "Too many open files" not in (tmp_path / "serve.log").read_text()


def test_a_flood_of_silent_sockets_cannot_starve_a_low_fd_limit(low_fd_server: tuple[str, int]) -> None:
    # 1000 silent sockets against a process allowed 512 files: without a cap accept() fails with EMFILE
    # and /healthz times out. With it, the oldest silent sockets are closed to make room for new ones.
    base, pid = low_fd_server
    host, port = base.removeprefix("http://").split(":")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        if hard != resource.RLIM_INFINITY and hard < 1200:
            pytest.skip(f"this test opens 1000 sockets; RLIMIT_NOFILE allows {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (1200, hard))
    silent = [socket.create_connection((host, int(port)), timeout=15) for _ in range(1000)]
    try:
        time.sleep(0.5)
        open_files = len(os.listdir(f"/proc/{pid}/fd"))
        assert open_files <= 512 - FD_RESERVE + 20
        for _ in range(5):
            assert httpx.get(base + "/healthz", timeout=10).status_code == 200
            assert httpx.get(base + thumbnail_path(), timeout=10).status_code == 200
        closed = 0
        for sock in silent:
            sock.setblocking(False)
            try:
                closed += sock.recv(1) == b""
            except BlockingIOError:
                pass
            except ConnectionResetError:
                closed += 1
        assert closed >= 1000 - (512 - FD_RESERVE)
    finally:
        for sock in silent:
            sock.close()


def test_when_every_connection_is_busy_a_new_one_is_refused_with_503() -> None:
    # A cap of 2 and two requests in flight: the third connection cannot take a waiting one's place.
    release = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        while not release.is_set():
            await asyncio.sleep(0.01)
        headers = [(b"content-length", b"4")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"done"})

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = ServerConfig(
        app, server=ServerSettings(max_connections=2), http=GuardedH11Protocol, lifespan="off", log_config=None
    )
    import uvicorn

    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.01)
        with RawClient(base) as first, RawClient(base) as second:
            first.get("/slow")
            second.get("/slow")
            time.sleep(0.3)
            with RawClient(base) as refused:
                status, headers, body = refused.response()
            assert (status, body, headers["retry-after"]) == (503, b"Too many connections\n", "1")
            release.set()
            assert first.response()[2] == second.response()[2] == b"done"
    finally:
        release.set()
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def test_production_serve_says_one_line_at_start_up(media: Path, tmp_path: Path) -> None:
    keys = "first-secret-key,second-secret-key"
    env = {"THUMBSVC_KEY": keys, "THUMBSVC_MEDIA_ROOT": str(media), "THUMBSVC_RENDER_SLOTS": "3"}
    expected = Settings.from_env(env)
    log = tmp_path / "serve.log"
    with serve_in_process(env, log=log) as (base, _pid):
        assert httpx.get(base + "/healthz").status_code == 200
    text = log.read_text()
    ours = [line for line in text.splitlines() if "thumbsvc.server" in line]
    assert len(ours) == 1, text
    line = ours[0]
    for fact in (
        f"serving {base}/ in production mode: 2 keys",
        f"media root {media}",
        "allowed sources none",
        "3 render slots",
        # From this machine's memory limit, as the child sees it too (100 MB a slot without one).
        f"memory budget {expected.render_memory_budget / 1e6:g} MB ({expected.render_memory_source})",
    ):
        assert fact in line, line
    assert "secret" not in text
