"""Run deploy/'s nginx and HAProxy configurations and thumbsvc processes on loopback, as the current user."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import REPO

NGINX_TEMPLATE = REPO / "deploy" / "nginx" / "templates" / "thumbsvc.conf.template"
HAPROXY_CONFIG = REPO / "deploy" / "haproxy" / "haproxy.cfg"
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def find_binary(name: str) -> str | None:
    """nginx and haproxy live in /usr/sbin, which a non-root PATH may lack."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def render_template(text: str, values: Mapping[str, str]) -> str:
    """Substitute ``${NAME}`` like the nginx image's envsubst step; every placeholder must have a value."""
    missing = sorted(set(PLACEHOLDER.findall(text)) - set(values))
    assert not missing, f"no value for {missing}"
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def nginx_main_config(workdir: Path, include: Path, extra: str = "") -> str:
    """The main nginx.conf around deploy's include: pid, logs and temp files under ``workdir``."""
    user = "user root root;\n" if os.geteuid() == 0 else ""  # else the workers would drop to 'nobody'
    temp = "\n".join(
        f"    {kind}_temp_path {workdir / (kind + '_temp')};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}daemon off;\nworker_processes 2;\npid {workdir / 'nginx.pid'};\n"
        f"error_log {workdir / 'nginx-error.log'} info;\n"
        "events { worker_connections 512; }\n"
        "http {\n"
        f"    access_log {workdir / 'nginx-access.log'};\n{temp}\n"
        f"    include {include};\n{extra}"
        "}\n"
    )


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return f"--- {self.name} ({self.log}) ---\n" + "\n".join(text.splitlines()[-lines:])

    def alive(self) -> bool:
        return self.popen.poll() is None

    def terminate(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL to the whole process group (nginx's workers too) if it lingers."""
        self.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=15)
        if self.popen.poll() is None:
            # Still alive, so the group is still ours: take its children (nginx's workers) with it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)


@dataclass
class Stack:
    """thumbsvc processes behind HAProxy behind nginx, all on 127.0.0.1."""

    workdir: Path
    processes: list[Process] = field(default_factory=list)
    app_ports: list[int] = field(default_factory=list)
    app_processes: list[Process] = field(default_factory=list)
    lb_port: int = 0
    stats_port: int = 0
    edge_port: int = 0
    killed: list[Process] = field(default_factory=list)

    @property
    def edge(self) -> str:
        return f"http://127.0.0.1:{self.edge_port}"

    def start(self, name: str, argv: list[str], env: Mapping[str, str]) -> Process:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                argv,
                env=dict(env),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                start_new_session=True,
            )
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def logs(self) -> str:
        return "\n".join(p.tail() for p in self.processes)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
        for process in reversed(self.processes):
            process.stop()

    def wait_until(self, what: str, ready: Callable[[], bool], timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for process in self.processes:
                assert process.alive() or process in self.killed, f"{process.name} exited\n{self.logs()}"
            try:
                if ready():
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}\n{self.logs()}")

    def kill_app(self, index: int) -> None:
        process = self.app_processes[index]
        self.killed.append(process)
        os.killpg(process.popen.pid, signal.SIGKILL)
        process.popen.wait(timeout=10)

    def server_states(self) -> dict[str, str]:
        """HAProxy's view of each thumbsvc server: UP, DOWN, ... (from its stats CSV)."""
        text = httpx.get(f"http://127.0.0.1:{self.stats_port}/stats;csv", timeout=2).text
        rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
        return {
            row["svname"]: row["status"]
            for row in rows
            if row["pxname"] == "thumbsvc" and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def metric(self, index: int, name: str, **labels: str) -> float:
        """A counter of one process (summed over label sets matching ``labels``), scraped on its own port."""
        text = httpx.get(f"http://127.0.0.1:{self.app_ports[index]}/metrics", timeout=5).text
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and labels.items() <= sample.labels.items():
                    total += sample.value
        return total

    def renders(self, index: int) -> float:
        return self.metric(index, "thumbsvc_renders_total")

    def total(self, name: str, **labels: str) -> float:
        """Summed over every live process: counters are per process."""
        return sum(self.metric(i, name, **labels) for i, p in enumerate(self.app_processes) if p not in self.killed)

    def total_renders(self) -> float:
        return self.total("thumbsvc_renders_total")

    def origin_thumbnail_requests(self) -> float:
        """Thumbnail requests that reached any thumbsvc process."""
        return self.total("thumbsvc_requests_total", route="thumbnail")


def start_stack(
    workdir: Path,
    *,
    app_command: list[str],
    app_env: Mapping[str, str],
    nginx: str,
    haproxy: str,
    replicas: int = 2,
) -> Stack:
    """Start ``replicas`` thumbsvc processes, HAProxy over them and nginx over HAProxy; wait until all serve."""
    stack = Stack(workdir)
    try:
        for index in range(replicas):
            port = free_port()
            env = {**app_env, "THUMBSVC_HOST": "127.0.0.1", "THUMBSVC_PORT": str(port)}
            stack.app_ports.append(port)
            stack.app_processes.append(stack.start(f"thumbsvc{index + 1}", app_command, env))
        for port in stack.app_ports:
            stack.wait_until(
                f"thumbsvc on {port}",
                lambda port=port: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200,
            )

        stack.lb_port, stack.stats_port = free_port(), free_port()
        lb_env = {
            **os.environ,
            "LB_BIND": f"127.0.0.1:{stack.lb_port}",
            "LB_STATS_BIND": f"127.0.0.1:{stack.stats_port}",
            **{f"THUMBSVC_SERVER_{i + 1}": f"127.0.0.1:{port}" for i, port in enumerate(stack.app_ports)},
        }
        lb_env.pop("THUMBSVC_DNS_NAME", None)
        stack.start("haproxy", [haproxy, "-db", "-f", str(HAPROXY_CONFIG)], lb_env)
        stack.wait_until(
            "HAProxy to see every thumbsvc UP",
            lambda: sorted(stack.server_states().values()) == ["UP"] * replicas,
        )

        stack.edge_port = free_port()
        cache_dir = workdir / "nginx-cache"
        include = workdir / "thumbsvc.conf"
        include.write_text(
            render_template(
                NGINX_TEMPLATE.read_text(),
                {
                    "NGINX_PORT": f"127.0.0.1:{stack.edge_port}",
                    "THUMBSVC_UPSTREAM": f"127.0.0.1:{stack.lb_port}",
                    "NGINX_CACHE_DIR": str(cache_dir),
                    "NGINX_CACHE_MAX_SIZE": "200m",
                },
            )
        )
        main = workdir / "nginx.conf"
        main.write_text(nginx_main_config(workdir, include))
        stack.start(
            "nginx", [nginx, "-p", str(workdir), "-e", str(workdir / "nginx-error.log"), "-c", str(main)], os.environ
        )
        stack.wait_until("nginx to answer", lambda: httpx.get(f"{stack.edge}/healthz", timeout=1).status_code == 200)
    except BaseException:
        stack.stop()
        raise
    return stack
