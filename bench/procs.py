"""Process helpers: the competitors' interpreters, CPU pinning, and peak RSS of a process tree."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.workloads import REPO


def venvs_dir() -> Path:
    return Path(os.environ.get("THUMBSVC_BENCH_VENVS") or os.path.expanduser("~/.cache/thumbsvc-bench"))


def venv_python(name: str) -> str:
    """Return the interpreter of a competitor's venv; exit with a hint if it is missing."""
    python = venvs_dir() / name / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"{python} is missing: run bench/setup_venvs.sh first")
    return str(python)


def popen(  # type: ignore[no-untyped-def]
    argv: list[str], *, cpus: set[int] | None = None, env: dict[str, str] | None = None, cwd: Path = REPO, **kwargs
):
    """Start a child (by default in the repository root), optionally pinned to ``cpus``."""
    full_env = dict(os.environ)
    full_env.update(env or {})

    def pin() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)

    return subprocess.Popen(argv, cwd=cwd, env=full_env, preexec_fn=pin, **kwargs)


def children(pid: int) -> list[int]:
    """Return ``pid`` and all its descendants (from /proc)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    todo.extend(int(child) for child in handle.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


class RSSSampler:
    """Sample the resident set of a process tree every ``interval_s`` while running.

    ``peak_total_kib`` is the largest sum over the tree, ``peak_process_kib`` the largest single process.
    """

    def __init__(self, pid: int, interval_s: float = 0.05) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.peak_total_kib = 0
        self.peak_process_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RSSSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            sizes = [rss_kib(pid) for pid in children(self.pid)]
            self.peak_total_kib = max(self.peak_total_kib, sum(sizes))
            self.peak_process_kib = max(self.peak_process_kib, max(sizes, default=0))
            time.sleep(self.interval_s)


def tree_commit(tree: Path) -> str:
    """Return ``tree``'s commit, with ``+dirty`` when its thumbsvc/ has uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "thumbsvc"], cwd=tree, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty.stdout.strip() else "")


def machine_info(tree: Path = REPO) -> dict[str, object]:
    """Return what a reader needs to judge a figure: CPU, load, library versions, the measured commit."""
    info: dict[str, object] = {"python": sys.version.split()[0], "cpus": os.cpu_count(), "loadavg": os.getloadavg()}
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        from PIL import __version__ as pillow_version
        from PIL import features

        info["pillow"] = pillow_version
        info["libjpeg_turbo"] = features.version("libjpeg_turbo")
    except ImportError:
        pass
    info["thumbsvc_tree"] = str(tree)
    info["thumbsvc_commit"] = tree_commit(tree)
    return info
