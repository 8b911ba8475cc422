"""Servers under test, each started on 127.0.0.1 in its own session and stopped with its whole group.

``ThumbsvcServer`` runs ``thumbsvc serve`` from a checkout with exactly the settings the run
records (``procs.server_env`` drops every THUMBSVC_*, MALLOC_*, PILLOW_* and AWS_* variable of
the runner's own environment first). ``ThumborServer`` runs thumbor 7.8 from its venv
(``bench/setup_venvs.sh``), file loader, no storage.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from bench.lib.procs import knows_setting, server_env, venv_python

HOST = "127.0.0.1"  # benchmarks send traffic to loopback only
KEY = "bench-key-not-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Server:
    """A server process on a loopback port."""

    name: str
    proc: subprocess.Popen[bytes]

    def __init__(self) -> None:
        self.port = free_port()
        self.base = f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def start(self, log: Path | None = None) -> None:
        raise NotImplementedError

    def path(self, source: str, width: int, height: int, fit: str, background: str | None = None) -> str:
        """Return the URL path of a JPEG q85 thumbnail of ``source`` fitting ``width`` x ``height`` by ``fit``.

        ``background`` (``#rrggbb``) is the ``bg:`` option: it changes nothing in an opaque source's
        thumbnail, only the URL.
        """
        raise NotImplementedError

    def counters(self) -> dict[str, float]:
        """Work done so far (renders, decodes, fetches and their seconds), where the server tells."""
        return {}

    def spawn(self, argv: list[str], env: Mapping[str, str], cwd: Path, log: Path | None) -> None:
        out = log.open("wb") if log else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            argv, cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, path: str, log: Path | None, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = log.read_text(errors="replace")[-800:] if log and log.exists() else ""
                raise SystemExit(f"{self.name} exited at start-up (exit {self.proc.returncode}):\n{tail}")
            try:
                if httpx.get(f"{self.base}{path}", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise SystemExit(f"{self.name} not ready after {timeout_s} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            # Started in its own session: its group is exactly it and its workers.
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class ThumbsvcServer(Server):
    """``thumbsvc serve`` from ``tree`` with ``settings`` (THUMBSVC_* and any other variable of its environment)."""

    def __init__(self, name: str, tree: Path, settings: Mapping[str, str], workers: int = 1) -> None:
        super().__init__()
        self.name = name
        self.tree = tree
        self.workers = workers
        self.settings = {"THUMBSVC_KEY": KEY, **settings}
        for variable in list(self.settings):
            if variable.startswith("THUMBSVC_") and not knows_setting(tree, variable):
                # An older checkout refuses a setting it does not have; say so rather than fail.
                print(f"  {name}: {tree} has no {variable}; left out")
                del self.settings[variable]
        from thumbsvc.client import URLSigner

        self.signer = URLSigner(key=KEY)

    def start(self, log: Path | None = None) -> None:
        argv = [sys.executable, "-m", "thumbsvc.cli", "serve", "--host", HOST, "--port", str(self.port)]
        argv += ["--workers", str(self.workers), "--log-level", "warning"]
        self.spawn(argv, server_env(self.settings), self.tree, log)
        self.wait_ready("/healthz", log)

    def counters(self) -> dict[str, float]:
        """Work done so far, from /metrics (``counters_from``); empty if the server does not answer."""
        try:
            return counters_from(httpx.get(f"{self.base}/metrics", timeout=10).text)
        except httpx.HTTPError:
            return {}

    def path(self, source: str, width: int, height: int, fit: str, background: str | None = None) -> str:
        options: dict[str, object] = {"width": width, "height": height, "fit": fit, "format": "jpeg", "quality": 85}
        if background is not None:
            options["background"] = background
        return self.signer.path(source, **options)


def counters_from(text: str) -> dict[str, float]:
    """Given thumbsvc's /metrics text, return the work it counts (what the checkout exports of it).

    ``renders``, ``decodes``, ``joins`` (single-flight joins, every cache: 0 when every URL in
    flight is fresh), and per source kind ``fetches.KIND`` and ``fetch_s.KIND`` (the count and the
    sum of ``thumbsvc_fetch_seconds``: wall time per fetch).
    """
    from prometheus_client.parser import text_string_to_metric_families

    wanted = {
        "thumbsvc_renders_total": "renders",
        "thumbsvc_decodes_total": "decodes",
        "thumbsvc_singleflight_joins_total": "joins",
    }
    by_kind = {"thumbsvc_fetch_seconds_count": "fetches", "thumbsvc_fetch_seconds_sum": "fetch_s"}
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.name in wanted:
                name = wanted[item.name]
            elif item.name in by_kind:
                name = f"{by_kind[item.name]}.{item.labels.get('kind', '')}"
            else:
                continue
            found[name] = found.get(name, 0.0) + item.value
    return found


class ThumborServer(Server):
    """thumbor 7.8 from its venv: file loader under ``root``, no storage or result storage, q85."""

    def __init__(self, processes: int, python: Path, root: Path) -> None:
        super().__init__()
        self.name = f"thumbor-p{processes}"
        self.processes = processes
        self.executable = python.parent / "thumbor"
        self.root = root

    def start(self, log: Path | None = None) -> None:
        folder = log.parent if log else Path(tempfile.mkdtemp(prefix="thumbsvc-bench-thumbor-"))
        conf = folder / f"{self.name}.conf.py"
        conf.write_text(
            "\n".join(
                [
                    "LOADER = 'thumbor.loaders.file_loader'",
                    f"FILE_LOADER_ROOT_PATH = {str(self.root)!r}",
                    "STORAGE = 'thumbor.storages.no_storage'",
                    "RESULT_STORAGE = 'thumbor.result_storages.no_storage'",
                    "RESPECT_ORIENTATION = True",
                    "ALLOW_UNSAFE_URL = True",
                    "QUALITY = 85",
                    "AUTO_WEBP = False",
                    f"SECURITY_KEY = {KEY!r}",
                    "",
                ]
            )
        )
        argv = [str(self.executable), "--ip", HOST, "--port", str(self.port), "--conf", str(conf)]
        argv += ["--processes", str(self.processes), "-l", "warning"]
        self.spawn(argv, server_env({}), Path.cwd(), log)
        self.wait_ready("/healthcheck", log)

    def path(self, source: str, width: int, height: int, fit: str, background: str | None = None) -> str:
        if background is not None:
            raise ValueError("thumbor serves the local variants only: no bg option")
        prefix = "fit-in/" if fit == "contain" else ""
        return f"/unsafe/{prefix}{width}x{height}/{source}"


def thumbor(processes: int, root: Path) -> ThumborServer | None:
    """Return a thumbor server of ``processes`` processes, or None (with a line saying why) when its venv is missing."""
    from bench.lib.procs import skipped

    python = venv_python("thumbor")
    if python is None:
        print(skipped("thumbor", "thumbor"))
        return None
    return ThumborServer(processes, python, root)
