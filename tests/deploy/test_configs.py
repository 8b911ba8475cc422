"""deploy/'s nginx and HAProxy files pass their own checkers, and compose.yaml wires them to real files."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.stack import (
    HAPROXY_CONFIG,
    NGINX_TEMPLATE,
    PLACEHOLDER,
    find_binary,
    nginx_main_config,
    render_template,
)
from tests.helpers import REPO, TEST_KEY
from thumbsvc.config import Settings

DEPLOY = REPO / "deploy"
NGINX = find_binary("nginx")
HAPROXY = find_binary("haproxy")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def haproxy_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    assert HAPROXY is not None
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("THUMBSVC_", "LB_"))}
    return subprocess.run(
        [HAPROXY, "-c", "-f", str(HAPROXY_CONFIG)], env={**clean, **env}, capture_output=True, text=True, timeout=30
    )


@pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed (.ci/run installs Debian's)")
@pytest.mark.parametrize(
    "env",
    [
        pytest.param({"LB_BIND": ":8000", "THUMBSVC_DNS_NAME": "thumbsvc:8080"}, id="compose-dns"),
        pytest.param(
            {"LB_BIND": "127.0.0.1:8000", "THUMBSVC_SERVER_1": "127.0.0.1:8001", "THUMBSVC_SERVER_2": "127.0.0.1:8002"},
            id="fixed-servers",
        ),
        pytest.param(
            {"LB_BIND": ":8000", "LB_STATS_BIND": "127.0.0.1:8404", "THUMBSVC_SERVER_1": "10.0.0.5:8080"},
            id="one-server-with-stats",
        ),
    ],
)
def test_haproxy_config_is_valid(env: dict[str, str]) -> None:
    result = haproxy_check(env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Configuration file is valid" in result.stdout + result.stderr


@pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed (.ci/run installs Debian's)")
def test_haproxy_check_mode_fails_on_a_broken_server_line() -> None:
    # The check above means something: an address HAProxy cannot parse is an error.
    result = haproxy_check({"LB_BIND": ":8000", "THUMBSVC_SERVER_1": "not an address"})
    assert result.returncode != 0


def test_haproxy_config_checks_health_and_readiness_and_retries() -> None:
    text = HAPROXY_CONFIG.read_text()
    assert re.search(r"http-check send meth GET uri /healthz\b", text)
    assert re.search(r"http-check send meth GET uri /readyz\b", text)
    assert "option redispatch" in text
    assert re.search(r"^\s*retry-on .*conn-failure", text, re.M)
    # thumbsvc's own deadline for a render request is well under HAProxy's server timeout.
    server_timeout = int(re.search(r"timeout server (\d+)s", text).group(1))  # type: ignore[union-attr]
    settings = Settings(keys=(TEST_KEY,))
    assert server_timeout > settings.queue_timeout_s + settings.fetch_timeout_s + 5


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed (.ci/run installs Debian's)")
def test_nginx_template_renders_to_a_valid_config(tmp_path: Path) -> None:
    assert NGINX is not None
    include = tmp_path / "thumbsvc.conf"
    values = compose()["services"]["edge"]["environment"]
    values = {**values, "NGINX_CACHE_DIR": str(tmp_path / "cache"), "THUMBSVC_UPSTREAM": "127.0.0.1:8000"}
    include.write_text(render_template(NGINX_TEMPLATE.read_text(), values))
    main = tmp_path / "nginx.conf"
    main.write_text(nginx_main_config(tmp_path, include))
    result = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(main)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_nginx_template_caches_on_the_raw_uri_and_passes_it_unchanged() -> None:
    text = NGINX_TEMPLATE.read_text()
    assert re.search(r'proxy_cache_key\s+"\$request_uri\|\$thumbsvc_accept_bucket";', text)
    # proxy_pass with no URI part: nginx forwards the client's request line as it came.
    assert re.findall(r"proxy_pass\s+(\S+);", text) == ["http://thumbsvc"] * 4
    assert "proxy_cache_lock on;" in text
    assert re.search(r"proxy_cache_use_stale[^;]*\berror\b[^;]*\btimeout\b[^;]*\bupdating\b", text)
    assert "add_header X-Cache-Status $upstream_cache_status always;" in text
    valid = re.findall(r"proxy_cache_valid ([^;]+);", text)
    assert valid == ["400 404 410 413 415 422 1m"] * 2  # never 403, never 5xx
    # Expiring URLs have a location of their own that never serves a stale copy.
    expiring = text[text.index("location ~ /exp:") :]
    expiring = expiring[: expiring.index("\n    }\n")]
    assert "proxy_cache_use_stale off;" in expiring and "background_update" not in expiring


def test_nginx_template_placeholders_match_compose() -> None:
    placeholders = set(PLACEHOLDER.findall(NGINX_TEMPLATE.read_text()))
    edge = compose()["services"]["edge"]
    assert placeholders == set(edge["environment"])
    assert "./nginx/templates:/etc/nginx/templates:ro" in edge["volumes"]
    assert (DEPLOY / "nginx" / "templates").is_dir()


def test_compose_wires_real_files_and_valid_settings() -> None:
    services = compose()["services"]
    assert set(services) == {"thumbsvc", "lb", "edge"}
    app = services["thumbsvc"]
    assert app["build"]["dockerfile"] == "Dockerfile"
    assert (DEPLOY / app["build"]["context"] / app["build"]["dockerfile"]).is_file()
    assert app["read_only"] is True
    assert app["env_file"] == ["thumbsvc.env"]
    # The example env file, with the compose environment on top, is a valid production configuration.
    example = dict(
        line.split("=", 1)
        for line in (DEPLOY / "thumbsvc.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert example["THUMBSVC_KEY"]
    env = {**example, **app["environment"]}
    settings_env = {k: v for k, v in env.items() if k.startswith("THUMBSVC_") and k != "THUMBSVC_MEDIA_ROOT"}
    settings = Settings.from_env(settings_env)
    assert not settings.dev_mode
    # docker stop waits stop_grace_period before SIGKILL: long enough to drain and finish requests in flight.
    grace_s = int(app["stop_grace_period"].removesuffix("s"))
    assert settings.drain_delay_s > 0
    assert grace_s >= settings.drain_delay_s + settings.shutdown_timeout_s + 5

    lb = services["lb"]
    assert "./haproxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in lb["volumes"]
    assert lb["environment"]["THUMBSVC_DNS_NAME"] == f"thumbsvc:{app['environment']['THUMBSVC_PORT']}"
    assert lb["depends_on"]["thumbsvc"]["condition"] == "service_healthy"
    lb_port = lb["environment"]["LB_BIND"].rsplit(":", 1)[1]
    assert services["edge"]["environment"]["THUMBSVC_UPSTREAM"] == f"lb:{lb_port}"
    # The env file with the real key stays out of git.
    assert "thumbsvc.env" in (DEPLOY / ".gitignore").read_text().split()
