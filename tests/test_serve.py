"""``thumbsvc serve`` for real: the embedded default on a loopback port, every thumbnail loading."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers import decode


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def dev_server() -> Iterator[str]:
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("THUMBSVC_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "thumbsvc.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("thumbsvc serve did not start")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_embedded_default_serves_the_landing_page_and_its_thumbnails(dev_server: str) -> None:
    with httpx.Client(base_url=dev_server, timeout=30) as client:
        page = client.get("/")
        assert page.status_code == 200
        sources = re.findall(r'<img[^>]+src="(/[^"]+)"', page.text)
        assert len(sources) >= 5  # the playground: a tile per bundled sample, the original, the thumbnail
        for src in set(sources):
            response = client.get(src.replace("&amp;", "&"))
            assert response.status_code == 200, src
            assert response.headers["content-type"].startswith("image/")
            assert decode(response.content).width > 0
