"""The benchmark runner's own contracts (``python -m bench``), without running a benchmark.

Speed is never asserted here: ``python -m bench smoke`` (in .ci/run) runs one tiny round of every
workload. These tests hold what the smoke cannot show: what a server's environment may contain,
where results may go, how a comparison reads, and that every workload takes the common options.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

import bench
from bench.lib import cli, results
from bench.lib.httpbench import FOLDERS, Variant, cpu_deltas, fetch_cost, first_index
from bench.lib.origins import MOTO_MODULES, MotoStore, StaticOrigin, not_installed
from bench.lib.photos import SIZES, sample_photos
from bench.lib.procs import server_env
from bench.lib.servers import counters_from

REPO = Path(__file__).resolve().parent.parent


def test_a_server_sees_only_the_settings_the_run_gives_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # thumbsvc refuses unknown THUMBSVC_* names: the runner's own variables must never reach it.
    monkeypatch.setenv("THUMBSVC_BENCH_OUT", "/tmp/somewhere")
    monkeypatch.setenv("THUMBSVC_RENDER_SLOTS", "7")
    monkeypatch.setenv("MALLOC_ARENA_MAX", "1")
    monkeypatch.setenv("PILLOW_BLOCK_SIZE", "1m")
    monkeypatch.setenv("AWS_PROFILE", "production")  # a developer's chain: only the S3 variant sets AWS_*, its own
    env = server_env({"THUMBSVC_KEY": "k", "MALLOC_ARENA_MAX": "2"})
    assert {name for name in env if name.startswith(("THUMBSVC_", "MALLOC_", "PILLOW_", "AWS_"))} == {
        "THUMBSVC_KEY",
        "MALLOC_ARENA_MAX",
    }
    assert env["MALLOC_ARENA_MAX"] == "2"
    assert env["PATH"]


def test_results_are_refused_inside_the_repository(tmp_path: Path) -> None:
    result = results.Result("inprocess", [])
    with pytest.raises(SystemExit, match="outside the repository"):
        results.write(result, REPO / "bench" / "r.json")
    written = results.write(result, tmp_path / "r.json")
    assert results.load(written)["workload"] == "inprocess"


def test_a_comparison_names_a_change_only_beyond_both_runs_ranges() -> None:
    base = results.Result("http", [])
    base.add("cold.c4.thumbsvc.thumbs_per_core_s", [13.0, 13.5, 14.0], "thumbs/core-s", "higher")
    base.add("cold.c4.thumbsvc.p99_ms", [500, 520], "ms", "lower")
    base.add("cold.c4.thumbsvc.status_503", [0, 0], "count", "lower")
    new = results.Result("http", [])
    new.add("cold.c4.thumbsvc.thumbs_per_core_s", [11.0, 11.5, 12.0], "thumbs/core-s", "higher")
    new.add("cold.c4.thumbsvc.p99_ms", [510, 530], "ms", "lower")
    new.add("cold.c4.thumbsvc.status_503", [0, None], "count", "lower")
    lines = {line.split()[0]: line.split()[-1] for line in results.compare(base.to_json(), new.to_json())[2:]}
    assert lines == {
        "cold.c4.thumbsvc.thumbs_per_core_s": "WORSE",
        "cold.c4.thumbsvc.p99_ms": "~",
        "cold.c4.thumbsvc.status_503": "~",
    }


def test_a_baseline_holds_metrics_only_and_compares_per_workload(tmp_path: Path) -> None:
    from bench.baseline import make

    run = results.Result("memory", ["--sets", "w1"])
    run.add("w1.thumbsvc.peak_rss_mib", [140.0, 150.0], "MiB", "lower")
    run.details["w1"] = {"big": list(range(1000))}
    baseline = make([run.to_json()], "0.1.0")
    assert "details" not in baseline["workloads"]["memory"]
    assert results.section(baseline, "memory") is not None
    assert results.section(baseline, "http") is None


def test_alt_specs_name_a_checkout_settings_or_both(tmp_path: Path) -> None:
    assert cli.parse_alt("nobudget=:THUMBSVC_RENDER_MEMORY_BUDGET=0") == (
        "nobudget",
        None,
        {"THUMBSVC_RENDER_MEMORY_BUDGET": "0"},
    )
    assert cli.parse_alt(f"base={tmp_path}:A=1,B=2") == ("base", tmp_path.resolve(), {"A": "1", "B": "2"})
    with pytest.raises(SystemExit):
        cli.parse_alt("no-equals-sign")


@pytest.mark.parametrize("name", bench.workloads())
def test_every_workload_runs_from_the_one_entry_point_with_the_common_options(name: str) -> None:
    if name == "floors" and importlib.util.find_spec("pyperf") is None:
        pytest.skip("pyperf is in the bench extra")
    done = subprocess.run(
        [sys.executable, "-m", "bench", name, "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    for option in ("--smoke", "--out", "--compare"):
        assert option in done.stdout


def test_an_unknown_workload_is_refused_with_the_list() -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "nope"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 2
    assert "http" in done.stderr


# ---- the source variants of `bench http` (cold, cold-http, cold-s3) ----

WALKED = 200  # steps each client takes below: more than one client asks for in a round of W1


def source_variants() -> list[Variant]:
    from bench.http import ColdHTTP, ColdS3

    http = ColdHTTP()
    http.base = "http://127.0.0.1:9"  # as if started: the plan needs the origin's address only
    return [Variant(), http, ColdS3()]


@pytest.mark.parametrize("variant", source_variants(), ids=lambda v: v.name)
def test_no_two_clients_ask_for_the_same_source_or_url_at_once(variant: Variant) -> None:
    # Single flight merges identical thumbnails, and identical sources' fetches: either would
    # make a cold request cheaper than it is. Clients start len(plan)/n apart and walk on.
    photos = sample_photos()
    for clients in range(1, 9):
        plan = variant.plan(photos, clients)
        urls = [(p.source, p.width, p.height, p.fit, p.background) for p in plan]
        assert len(set(urls)) == len(urls), f"{variant.name}: a URL twice in the plan"
        assert len(plan) >= FOLDERS * len(photos) * len(SIZES)
        walks = [
            {plan[(first_index(i, clients, len(plan)) + step) % len(plan)].source for step in range(WALKED)}
            for i in range(clients)
        ]
        for i in range(clients):
            for j in range(i + 1, clients):
                assert not walks[i] & walks[j], f"{variant.name}, {clients} clients: {i} and {j} share a source"


def test_the_s3_plan_reads_one_copy_per_client_and_varies_only_bg() -> None:
    from bench.http import BUCKET, ColdS3

    photos = sample_photos()
    plan = ColdS3().plan(photos, 4)
    objects = {p.source for p in plan}
    assert objects == {f"s3://{BUCKET}/photos/c{n:02d}/{photo.name}" for n in range(4) for photo in photos}
    assert {(p.width, p.height, p.fit) for p in plan} == set(SIZES)
    assert all(p.background is not None and len(p.background) == 7 for p in plan)  # "#rrggbb": opaque, no alpha


def test_a_bg_colour_changes_nothing_in_an_opaque_jpeg_thumbnail() -> None:
    # What lets the S3 variant make URLs fresh with bg: instead of copies: the same work, the same
    # answer (so the harness's check of each answer's size holds, and the pixels are the local variant's).
    from bench.lib.adapter import renderer

    render = renderer()
    for photo in sample_photos():
        data = photo.read_bytes()
        for width, height, fit in SIZES:
            plain = render(data, width=width, height=height, fit=fit, quality=85)
            shaded = render(data, width=width, height=height, fit=fit, quality=85, background="#00012b")
            assert shaded == plain, f"{photo.name} {width}x{height} {fit}"


def test_the_s3_variant_gives_its_server_throwaway_keys_and_no_metadata_service(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from bench.http import BUCKET, ColdS3
    from bench.lib.origins import Store

    # A developer's real chain in the runner's shell must not reach the server.
    monkeypatch.setenv("AWS_PROFILE", "production")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREALREALREAL")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "real-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "real-token")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/token")
    variant = ColdS3()
    with pytest.raises(RuntimeError, match="start"):
        variant.settings(tmp_path)  # no keys before moto has made them
    variant.store = Store("http://127.0.0.1:45678", BUCKET, "MOTOKEYID", "moto-made-secret")
    env = server_env({"THUMBSVC_KEY": "k", **variant.settings(tmp_path)})
    assert {name for name in env if name.startswith("AWS_")} == {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
        "AWS_EC2_METADATA_DISABLED",
        "AWS_METADATA_ENDPOINT",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_CONFIG_FILE",
    }
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == ("MOTOKEYID", "moto-made-secret")
    assert env["AWS_EC2_METADATA_DISABLED"] == "true"
    assert env["AWS_METADATA_ENDPOINT"].startswith("http://127.0.0.1:")
    assert env["AWS_SHARED_CREDENTIALS_FILE"] == env["AWS_CONFIG_FILE"] == os.devnull
    assert env["THUMBSVC_S3_ENDPOINT"] == "http://127.0.0.1:45678"
    assert env["THUMBSVC_ALLOWED_SOURCES"] == f"s3://{BUCKET}/"
    assert env["THUMBSVC_CACHE_BYTES"] == env["THUMBSVC_SOURCE_CACHE_BYTES"] == "0"


def test_the_http_variant_allows_its_loopback_origin_only() -> None:
    from bench.http import ColdHTTP

    variant = ColdHTTP()
    variant.base = "http://127.0.0.1:45679"
    settings = variant.settings(Path("/nonexistent"))
    assert settings["THUMBSVC_ALLOWED_SOURCES"] == "http://127.0.0.1:45679/"
    assert settings["THUMBSVC_ALLOW_PRIVATE_NETWORKS"] == "127.0.0.1/32"
    assert variant.source("g0007", Path("cat.jpg")) == "http://127.0.0.1:45679/g0007/cat.jpg"


def test_fetch_cost_is_read_from_thumbsvc_metrics_by_kind() -> None:
    # The names the harness reads are thumbsvc's own: a renamed metric fails here, not silently in a run.
    from thumbsvc.metrics import Metrics

    metrics = Metrics()
    for seconds in (0.004, 0.006):
        metrics.fetch_seconds.labels("remote").observe(seconds)
    metrics.fetch_seconds.labels("local").observe(0.001)
    metrics.renders.inc(3)
    metrics.decodes.inc(3)
    metrics.flight_joins.labels("source").inc()
    found = counters_from(metrics.exposition().decode())
    assert found["renders"] == found["decodes"] == 3
    assert found["joins"] == 1
    assert found["fetches.remote"] == 2 and found["fetches.local"] == 1
    assert found["fetch_s.remote"] == pytest.approx(0.01)
    cost = fetch_cost(found)
    assert cost["fetches"] == 3
    assert cost["fetch_ms"] == pytest.approx(11 / 3, abs=0.01)
    assert cost["fetch_ms_by_kind"] == {"remote": 5.0, "local": 1.0}
    assert cost["fetches_per_render"] == 1.0


def test_a_variant_is_set_against_the_local_one_round_by_round() -> None:
    mine = [{"cpu_ms_per_thumb": 70.0}, {"cpu_ms_per_thumb": None}, {"cpu_ms_per_thumb": 66.0}]
    local = [{"cpu_ms_per_thumb": 65.0}, {"cpu_ms_per_thumb": 64.0}, {"cpu_ms_per_thumb": 64.5}]
    assert cpu_deltas(mine, local) == [5.0, None, 1.5]


@pytest.mark.skipif(
    bool(not_installed("obstore", *MOTO_MODULES)), reason="moto[server] and obstore are in the test extra"
)
def test_the_bench_bucket_is_private_and_checks_signatures(tmp_path: Path) -> None:
    import obstore
    from obstore.store import S3Store

    photo = sample_photos()[0]
    moto = MotoStore("bench-check", files={"a/x.jpg": photo}, copies={"b/x.jpg": "a/x.jpg"})
    try:
        store = moto.start(tmp_path / "moto.log")
        assert store.endpoint.startswith("http://127.0.0.1:")
        assert httpx.get(f"{store.endpoint}/bench-check/a/x.jpg").status_code == 403  # unsigned

        def read(key: str, secret: str) -> bytes:
            s3 = S3Store(
                "bench-check",
                endpoint=store.endpoint,
                region=store.region,
                access_key_id=store.key_id,
                secret_access_key=secret,
                virtual_hosted_style_request=False,
                client_options={"allow_http": True},
                retry_config={"max_retries": 0},
            )
            return bytes(obstore.get(s3, key).bytes())

        assert read("a/x.jpg", store.secret) == read("b/x.jpg", store.secret) == photo.read_bytes()
        with pytest.raises(Exception, match=r"403|Forbidden|SignatureDoesNotMatch"):
            read("a/x.jpg", "not-the-secret")
    finally:
        moto.stop()


def test_the_bench_http_origin_serves_files_over_keep_alive(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "x.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "g0001").symlink_to("photos", target_is_directory=True)
    origin = StaticOrigin(tmp_path)
    try:
        base = origin.start(tmp_path / "origin.log")
        assert base.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=base) as client:
            first = client.get("/g0001/x.jpg")
            second = client.get("/photos/x.jpg")
        assert first.content == second.content == b"\xff\xd8 not really a jpeg"
        assert first.headers["content-length"] == str(len(first.content))
        assert first.http_version == "HTTP/1.1" and first.headers.get("connection") != "close"
    finally:
        origin.stop()


# -- the in-process arms of the filters and f:json: each renders what its name says ------------------------

QUADRANTS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}


def jpeg_of(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def arm_outputs() -> dict[str, tuple[Any, Any]]:
    """Each thumbsvc arm's 400x300 cover of a 1600x1200 photo of quadrants (red, green / blue, yellow) and of
    the same photo inside a white border: (decoded image or f:json's facts, of the bordered one)."""
    from PIL import Image

    from bench.lib.arms import ARMS
    from tests.helpers import decode, make_photo

    photo = make_photo((1600, 1200))
    framed = Image.new("RGB", (2000, 1500), (255, 255, 255))
    with Image.open(io.BytesIO(photo)) as opened:
        framed.paste(opened, (200, 150))
    bordered = jpeg_of(framed)
    outputs: dict[str, tuple[Any, Any]] = {}
    for name in (name for name in ARMS if name.startswith("thumbsvc")):
        arm = ARMS[name](str(REPO))
        shown = []
        for data in (photo, bordered):
            out, width, height = arm(data, 400, 300, "cover")
            assert (width, height) == (400, 300), name
            shown.append(json.loads(out) if name == "thumbsvc-json" else decode(out).convert("RGB"))
        outputs[name] = (shown[0], shown[1])
    return outputs


def near(pixel: Any, colour: tuple[int, int, int], tolerance: int = 20) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


def laplacian_variance(image: Any) -> float:
    from PIL import ImageFilter, ImageStat

    edges = image.convert("L").filter(ImageFilter.Kernel((3, 3), (0, 1, 0, 1, -4, 1, 0, 1, 0), 1, 128))
    return float(ImageStat.Stat(edges).var[0])


def test_the_filter_arms_render_their_filter(arm_outputs: dict[str, tuple[Any, Any]]) -> None:
    from PIL import ImageChops

    plain, plain_bordered = arm_outputs["thumbsvc"]
    assert near(plain.getpixel((100, 75)), QUADRANTS["red"])
    assert near(plain_bordered.getpixel((5, 5)), (255, 255, 255))
    # trim:10 cuts the white border: the bordered photo gives the photo's own thumbnail.
    assert near(arm_outputs["thumbsvc-trim"][1].getpixel((5, 5)), QUADRANTS["red"])
    # rot:90 (clockwise) brings the blue bottom-left quadrant to the top left; flip:h the green top-right one.
    assert near(arm_outputs["thumbsvc-rot"][0].getpixel((100, 75)), QUADRANTS["blue"])
    assert near(arm_outputs["thumbsvc-flip"][0].getpixel((100, 75)), QUADRANTS["green"])
    grey = arm_outputs["thumbsvc-gray"][0]
    assert all(len(set(grey.getpixel((x, y)))) == 1 for x in (50, 350) for y in (50, 250))
    assert laplacian_variance(arm_outputs["thumbsvc-blur"][0]) < laplacian_variance(plain) / 2
    assert laplacian_variance(arm_outputs["thumbsvc-sharp"][0]) > laplacian_variance(plain)
    # The watermark (240x80, its long side a fifth of the shorter side: 60x20, 6 px from the south-east
    # corner) changes that box and nothing else.
    marked = ImageChops.difference(arm_outputs["thumbsvc-wm"][0], plain).convert("L").point(lambda v: 255 * (v > 24))
    box = marked.getbbox()
    assert box is not None and box[0] >= 400 - 6 - 60 - 2 and box[1] >= 300 - 6 - 20 - 2
    assert box[2] - box[0] > 40 and box[3] - box[1] > 12  # most of it is visible
    facts = arm_outputs["thumbsvc-json"][0]
    assert facts["output"] == {"width": 400, "height": 300, "format": "jpeg"}
    assert facts["source"]["width"] == 1600 and facts["thumbhash"]
