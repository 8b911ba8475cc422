from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from starlette.testclient import TestClient

from tests.helpers import TEST_KEY, decode
from thumbsvc.app import create_app
from thumbsvc.config import Settings


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("THUMBSVC_")}
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "thumbsvc.cli", *args], capture_output=True, text=True, env=environ, timeout=60
    )


def test_url_command_signs_urls_the_server_accepts(media_root: Path) -> None:
    result = run_cli(
        "url",
        "photos/landscape.jpg",
        "--width",
        "120",
        "--height",
        "120",
        "--fit",
        "cover",
        "--gravity",
        "0.2,0.8",
        "--format",
        "webp",
        "--base-url",
        "http://testserver",
        THUMBSVC_KEY=TEST_KEY,
    )
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip()
    assert "/120x120/fit:cover/g:0.2:0.8/f:webp/photos/landscape.jpg" in url
    with TestClient(create_app(Settings(keys=(TEST_KEY,), media_root=str(media_root)))) as client:
        response = client.get(url)
    assert response.status_code == 200
    assert decode(response.content).size == (120, 120)


def test_url_command_needs_a_key() -> None:
    result = run_cli("url", "a.jpg", "--width", "10")
    assert result.returncode == 2
    assert "THUMBSVC_KEY" in result.stderr


def test_url_command_reports_bad_options() -> None:
    result = run_cli("url", "a.jpg", "--width", "10", "--background", "red", THUMBSVC_KEY="k")
    assert result.returncode == 2
    assert "background" in result.stderr


def test_invalid_configuration_stops_start_up_with_one_line() -> None:
    result = run_cli("serve", THUMBSVC_KEY="k", THUMBSVC_RENDER_SLOTS="lots")
    assert result.returncode == 2
    assert result.stderr.strip() == "thumbsvc: Config 'THUMBSVC_RENDER_SLOTS' has value 'lots'. Not a valid int."


def test_development_mode_refuses_public_interfaces() -> None:
    result = run_cli("serve", "--host", "0.0.0.0")
    assert result.returncode == 2
    assert "loopback" in result.stderr


def test_check_config() -> None:
    assert "production mode" in run_cli("check-config", THUMBSVC_KEY="k").stdout
    assert "development mode" in run_cli("check-config").stdout
