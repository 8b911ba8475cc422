"""Processes: the servers' environment, the competitors' interpreters, CPU and memory of a process tree."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from bench.lib.photos import REPO, bench_home

# A server child gets none of these from the runner's environment, only what the run sets and records:
# thumbsvc refuses unknown THUMBSVC_* names (the runner's own THUMBSVC_BENCH_* would stop it),
# allocator or Pillow variables left over in a shell would change what is measured without a trace,
# and a developer's AWS_* keys or profile must never reach a server (the S3 variant gives its own).
SCRUBBED_PREFIXES = ("THUMBSVC_", "MALLOC_", "PILLOW_", "AWS_")


def server_env(settings: Mapping[str, str]) -> dict[str, str]:
    """Return a server's environment: ours less every variable of SCRUBBED_PREFIXES, plus ``settings``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(SCRUBBED_PREFIXES)}
    env.update(settings)
    return env


def venvs_dir() -> Path:
    return Path(os.environ.get("THUMBSVC_BENCH_VENVS") or bench_home())


def venv_python(name: str) -> Path | None:
    """Return the interpreter of a competitor's venv (``bench/setup_venvs.sh`` builds them), or None."""
    python = venvs_dir() / name / "bin" / "python"
    return python if python.exists() else None


def skipped(what: str, venv: str) -> str:
    return f"{what}: skipped, no venv at {venvs_dir() / venv} (bash bench/setup_venvs.sh builds it)"


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


def status_kib(pid: int, field: str) -> int:
    """Return a ``/proc/PID/status`` size field (``VmRSS``, ``VmHWM``) in KiB, 0 if the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> dict[int, float]:
    """Return user + system CPU seconds of every process in the tree of ``pid``."""
    seconds = {}
    for child in children(pid):
        try:
            with open(f"/proc/{child}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            seconds[child] = (int(fields[11]) + int(fields[12])) / CLK_TCK
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    return seconds


class RSSSampler:
    """Sample the resident set of a process tree every ``interval_s`` while running.

    ``peak_total_kib`` is the largest sum over the tree, ``peak_process_kib`` the largest single process.
    """

    def __init__(self, pid: int, interval_s: float = 0.05) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.peak_total_kib = 0
        self.peak_process_kib = 0
        self.samples_kib: list[int] = []
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
            sizes = [status_kib(pid, "VmRSS") for pid in children(self.pid)]
            self.samples_kib.append(sum(sizes))
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


def knows_setting(tree: Path, variable: str) -> bool:
    """Whether the checkout at ``tree`` has the setting ``THUMBSVC_<NAME>`` (older checkouts refuse newer names)."""
    field = variable.removeprefix("THUMBSVC_").lower()
    try:
        return field in (tree / "thumbsvc" / "config.py").read_text()
    except OSError:
        return False


def machine_info(tree: Path = REPO) -> dict[str, object]:
    """Return what a reader needs to judge a figure: CPU, load, library versions, the measured commit."""
    info: dict[str, object] = {
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "loadavg": [round(v, 2) for v in os.getloadavg()],
    }
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
