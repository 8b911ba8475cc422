"""/metrics, /healthz, /readyz and the access log, in one process and across uvicorn workers."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from tests.helpers import TEST_KEY
from tests.live import sample, serve_in_process
from thumbsvc.accesslog import JsonFormatter, logging_config
from thumbsvc.app import create_app
from thumbsvc.client import URLSigner
from thumbsvc.config import Settings
from thumbsvc.metrics import REJECT_REASONS, ROUTE_NAMES
from thumbsvc.options import make_options

LANDSCAPE = "photos/landscape.jpg"
REQUIRED = (
    "thumbsvc_renders_total",
    "thumbsvc_requests_total",
    "thumbsvc_cache_hits_total",
    "thumbsvc_cache_misses_total",
    "thumbsvc_rejected_total",
    "thumbsvc_queue_depth",
    "thumbsvc_render_seconds_bucket",
    "thumbsvc_fetch_seconds_bucket",
    "thumbsvc_cache_bytes",
    "thumbsvc_singleflight_joins_total",
    "thumbsvc_source_bytes_total",
)


def test_metrics_endpoint_speaks_prometheus_with_the_documented_names(client: TestClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["cache-control"] == "no-store"
    names = {s.name for family in text_string_to_metric_families(response.text) for s in family.samples}
    for name in REQUIRED:
        assert name in names, name


def test_renders_are_counted_per_render_and_requests_per_status_class(client: TestClient, signer: URLSigner) -> None:
    path = signer.path(LANDSCAPE, width=120)
    for _ in range(3):
        assert client.get(path).status_code == 200
    assert client.get(path, headers={"If-None-Match": client.get(path).headers["etag"]}).status_code == 304
    assert client.get("/bad-signature/120x/photos/landscape.jpg").status_code == 403
    assert client.get(signer.path("photos/missing.jpg", width=10)).status_code == 404
    assert client.get("/healthz").status_code == 200
    text = client.get("/metrics").text
    assert sample(text, "thumbsvc_renders_total") == 1
    assert sample(text, "thumbsvc_requests_total", route="thumbnail", status="2xx") == 4
    assert sample(text, "thumbsvc_requests_total", route="thumbnail", status="3xx") == 1
    assert sample(text, "thumbsvc_requests_total", route="thumbnail", status="4xx") == 2
    assert sample(text, "thumbsvc_requests_total", route="healthz", status="2xx") == 1
    assert sample(text, "thumbsvc_render_seconds_count") == 1
    assert sample(text, "thumbsvc_cache_hits_total", cache="result") == 4


def test_no_label_carries_a_path_a_host_or_a_url(client: TestClient, signer: URLSigner) -> None:
    client.get(signer.path(LANDSCAPE, width=50))
    client.get(signer.path("https://images.example.com/a.jpg", width=50))
    client.get("/no/such/thing")
    text = client.get("/metrics").text
    values = {
        value
        for family in text_string_to_metric_families(text)
        if family.name.startswith("thumbsvc_")
        for s in family.samples
        for name, value in s.labels.items()
        if name != "le"  # histogram bucket bounds
    }
    assert values == {
        "thumbnail",
        *("2xx", "3xx", "4xx", "5xx"),
        *("result", "source", "decoded", "refusal", "size", "ttl", "memory", "local", "remote"),
        *REJECT_REASONS,
    }


@pytest.mark.parametrize("dev", [False, True])
def test_every_route_is_labelled_by_its_name(
    settings_factory: Callable[..., Settings], signer: URLSigner, dev: bool
) -> None:
    settings = Settings(render_slots=2) if dev else settings_factory()
    with TestClient(create_app(settings)) as client:
        thumbnail = client.app.state.thumbnailer.sign(  # type: ignore[attr-defined]
            "cat.jpg" if dev else LANDSCAPE, make_options(width=60)
        )
        visits = {
            "healthz": [("GET", "/healthz")],
            "readyz": [("GET", "/readyz")],
            "thumbnail": [("GET", thumbnail), ("HEAD", thumbnail), ("GET", "/no/such/thing")],
        }
        if dev:
            visits["playground"] = [("GET", "/")]
            visits["playground_grid"] = [("GET", "/_dev/grid")]
            visits["playground_static"] = [("GET", "/_dev/static/playground.css")]
            visits["playground_sign"] = [("POST", "/_dev/sign")]
        else:
            visits["index"] = [("GET", "/")]
        for requests in visits.values():
            for method, path in requests:
                client.request(method, path, headers={"content-type": "application/json"})
        client.get("/metrics")
        text = client.get("/metrics").text
    counted = {
        s.labels["route"]
        for family in text_string_to_metric_families(text)
        if family.name == "thumbsvc_requests"
        for s in family.samples
        if s.value > 0
    }
    assert counted == {*visits, "metrics"}
    assert counted <= set(ROUTE_NAMES)


def test_every_app_has_its_own_registry(settings_factory: Callable[..., Settings], signer: URLSigner) -> None:
    first = TestClient(create_app(settings_factory()))
    second = TestClient(create_app(settings_factory()))
    with first, second:
        assert first.get(signer.path(LANDSCAPE, width=60)).status_code == 200
        assert sample(first.get("/metrics").text, "thumbsvc_renders_total") == 1
        assert sample(second.get("/metrics").text, "thumbsvc_renders_total") == 0


def test_health_and_readiness(client: TestClient) -> None:
    health = client.get("/healthz")
    assert (health.status_code, health.text, health.headers["cache-control"]) == (200, "ok", "no-store")
    ready = client.get("/readyz")
    assert (ready.status_code, ready.headers["cache-control"]) == (200, "no-store")


def test_readyz_is_503_once_shutdown_begins(settings_factory: Callable[..., Settings], signer: URLSigner) -> None:
    app = create_app(settings_factory())
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200
    # The lifespan has ended: the app refuses new work rather than starting it.
    client = TestClient(app)
    assert client.get("/readyz").status_code == 503
    response = client.get(signer.path(LANDSCAPE, width=70))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.headers["cache-control"] == "no-store"


def test_one_access_line_per_request_with_cache_status_and_render_time(
    client: TestClient, signer: URLSigner, caplog: pytest.LogCaptureFixture
) -> None:
    path = signer.path(LANDSCAPE, width=140)
    with caplog.at_level(logging.INFO, logger="thumbsvc.access"):
        client.get(path)
        client.get(path)
        client.get(signer.path("photos/missing.jpg", width=10))
    records = [r for r in caplog.records if r.name == "thumbsvc.access"]
    assert len(records) == 3
    miss, hit, missing = (r.access for r in records)  # type: ignore[attr-defined]
    assert (miss["cache"], miss["status"], miss["route"], miss["method"]) == ("MISS", 200, "thumbnail", "GET")
    assert miss["render_ms"] > 0 and miss["fetch_ms"] >= 0
    assert miss["bytes"] > 0 and miss["path"] == path
    assert (hit["cache"], hit["render_ms"]) == ("HIT", None)
    assert missing["status"] == 404 and "missing.jpg" in missing["error"]
    assert "cache=MISS" in records[0].getMessage() and "render=" in records[0].getMessage()

    line = JsonFormatter().format(records[0])
    assert "\n" not in line
    data = json.loads(line)
    assert data["cache"] == "MISS" and data["status"] == 200 and data["level"] == "info"
    assert data["ts"].endswith("+00:00")


def test_logging_config_is_valid_for_both_formats() -> None:
    for json_lines in (False, True):
        config = logging_config(json_lines)
        assert config["loggers"]["thumbsvc"]["handlers"] == ["thumbsvc"]
        formatter = config["formatters"]["thumbsvc"]
        assert ("()" in formatter) is json_lines


def test_json_access_log_from_thumbsvc_serve(media_root: Path, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    env = {"THUMBSVC_KEY": TEST_KEY, "THUMBSVC_MEDIA_ROOT": str(media_root), "THUMBSVC_LOG_JSON": "1"}
    path = URLSigner(key=TEST_KEY).path(LANDSCAPE, width=99)
    with serve_in_process(env, log=log) as (base, _pid), httpx.Client(base_url=base, timeout=30) as http:
        assert http.get(path).headers["x-cache"] == "MISS"
        assert http.get(path).headers["x-cache"] == "HIT"
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("logger") == "thumbsvc.access" and line.get("route") == "thumbnail"]
    assert [line["cache"] for line in access] == ["MISS", "HIT"]
    assert access[0]["render_ms"] > 0


def test_metrics_add_up_across_uvicorn_workers(media_root: Path, tmp_path: Path) -> None:
    # A value file left by an earlier run must not be added in: serve empties the directory first.
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    (multiproc / "counter_999999.db").write_bytes(b"left over from an earlier run")
    env = {
        "THUMBSVC_KEY": TEST_KEY,
        "THUMBSVC_MEDIA_ROOT": str(media_root),
        "THUMBSVC_RENDER_SLOTS": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
    }
    path = URLSigner(key=TEST_KEY).path(LANDSCAPE, width=100)
    with serve_in_process(env, "--workers", "2") as (base, _pid):
        assert "counter_999999.db" not in os.listdir(multiproc)
        # Each worker has its own result cache: a second MISS means the second worker rendered it too.
        # A fresh connection each time, so the kernel hands them to either worker.
        misses = sent = 0
        while misses < 2 and sent < 300:
            with httpx.Client(base_url=base, timeout=30) as http:
                response = http.get(path)
            sent += 1
            assert response.status_code == 200
            misses += response.headers["x-cache"] == "MISS"
        assert misses == 2, "every request went to one worker"
        # Whichever worker answers the scrape, it reports both workers' renders.
        for _ in range(6):
            with httpx.Client(base_url=base, timeout=30) as http:
                text = http.get("/metrics").text
            assert sample(text, "thumbsvc_renders_total") == 2
            assert sample(text, "thumbsvc_requests_total", route="thumbnail", status="2xx") == sent
            assert sample(text, "thumbsvc_cache_hits_total", cache="result") == sent - 2


def test_serve_with_workers_makes_and_removes_its_own_metrics_directory(media_root: Path, tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {"THUMBSVC_KEY": TEST_KEY, "THUMBSVC_MEDIA_ROOT": str(media_root), "TMPDIR": str(scratch)}
    with serve_in_process(env, "--workers", "2") as (base, _pid):
        made = [p.name for p in scratch.iterdir()]
        assert len(made) == 1 and made[0].startswith("thumbsvc-metrics-")
        with httpx.Client(base_url=base, timeout=30) as http:
            assert http.get(URLSigner(key=TEST_KEY).path(LANDSCAPE, width=64)).status_code == 200
            assert sample(http.get("/metrics").text, "thumbsvc_renders_total") == 1
    assert list(scratch.iterdir()) == []
