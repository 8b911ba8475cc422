"""Real thumbor 7.8 for the comparison tests: its own venv (it pins an older Pillow), its file loader
over a folder of ours, on 127.0.0.1, in its own session so it stops with its whole group.

The venv is the one ``bench/setup_venvs.sh`` and ``.ci/run`` build (``$THUMBSVC_BENCH_VENVS/thumbor``,
default ``~/.cache/thumbsvc-bench/thumbor``); ``thumbor_python`` says why it is missing instead.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench.lib.procs import venvs_dir

HOST = "127.0.0.1"
CONFIG = """\
LOADER = 'thumbor.loaders.file_loader'
FILE_LOADER_ROOT_PATH = {root!r}
STORAGE = 'thumbor.storages.no_storage'
RESULT_STORAGE = 'thumbor.result_storages.no_storage'
SECURITY_KEY = {key!r}
ALLOW_UNSAFE_URL = False
RESPECT_ORIENTATION = True
AUTO_WEBP = False
"""


def thumbor_python() -> tuple[Path | None, str]:
    """Return thumbor's interpreter and its version, or None and why it cannot be used."""
    python = venvs_dir() / "thumbor" / "bin" / "python"
    if not python.exists():
        return None, f"no thumbor venv at {python.parent.parent} (.ci/run and bench/setup_venvs.sh build it)"
    found = subprocess.run(
        [str(python), "-c", "import thumbor; print(thumbor.__version__)"], capture_output=True, text=True, check=False
    )
    version = found.stdout.strip()
    if found.returncode != 0 or not version.startswith("7.8"):
        return None, f"the venv at {python.parent.parent} has no thumbor 7.8 ({version or found.stderr[-200:]})"
    return python, version


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@contextmanager
def run_thumbor(python: Path, root: Path, key: str, workdir: Path) -> Iterator[str]:
    """Run thumbor with the file loader over ``root`` and ``key``; yield its base URL, then stop it."""
    port = free_port()
    conf = workdir / "thumbor.conf"
    conf.write_text(CONFIG.format(root=str(root), key=key))
    log = (workdir / "thumbor.log").open("wb")
    argv = [str(python.parent / "thumbor"), "--ip", HOST, "--port", str(port), "--conf", str(conf), "-l", "warning"]
    env = {name: value for name, value in os.environ.items() if not name.startswith(("THUMBSVC_", "PILLOW_"))}
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"thumbor exited: {(workdir / 'thumbor.log').read_text()[-800:]}")
            try:
                if httpx.get(f"{base}/healthcheck", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("thumbor did not answer /healthcheck within 60 s")
            time.sleep(0.1)
        yield base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
