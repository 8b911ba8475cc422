"""End to end through the app: signed URL in, exact thumbnail out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.helpers import TEST_KEY, decode
from thumbsvc.client import URLSigner
from thumbsvc.options import GRAVITIES

LANDSCAPE = "photos/landscape.jpg"  # 1200x900: red, green / blue, yellow quadrants
PORTRAIT = "photos/portrait.png"  # 600x800
FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "avif": "AVIF"}


def get(client: TestClient, signer: URLSigner, source: str, **options: Any) -> Any:
    return client.get(signer.path(source, **options))


@pytest.mark.parametrize(
    ("options", "size"),
    [
        ({"width": 300, "height": 200, "fit": "cover"}, (300, 200)),
        ({"width": 300, "height": 200, "fit": "fill"}, (300, 200)),
        ({"width": 300, "height": 200, "fit": "pad"}, (300, 200)),
        ({"width": 300, "height": 200, "fit": "contain"}, (267, 200)),
        ({"width": 300, "height": 300}, (300, 225)),
        ({"width": 300}, (300, 225)),
        ({"height": 90}, (120, 90)),
        ({}, (1200, 900)),
        ({"width": 300, "height": 200, "fit": "cover", "dpr": 2}, (600, 400)),
        ({"width": 301, "height": 201, "fit": "cover", "dpr": 1.5}, (452, 302)),
        ({"width": 300, "height": 300, "dpr": 3}, (900, 675)),
        # Never upscale unless asked.
        ({"width": 2400, "height": 1800}, (1200, 900)),
        ({"width": 2400, "height": 1200, "fit": "cover"}, (1200, 600)),
        ({"width": 2400, "height": 1200, "fit": "fill"}, (1200, 600)),
        ({"width": 2400, "height": 1200, "fit": "pad"}, (2400, 1200)),
        ({"width": 2400, "height": 1800, "upscale": True}, (2400, 1800)),
        ({"width": 2000, "height": 500, "fit": "cover", "upscale": True}, (2000, 500)),
        # Crop boxes are in source pixels, applied before resizing.
        ({"crop": (0, 0, 600, 450)}, (600, 450)),
        ({"width": 100, "height": 100, "fit": "cover", "crop": (100, 100, 800, 400)}, (100, 100)),
        ({"width": 200, "crop": (600, 450, 600, 450), "dpr": 2}, (400, 300)),
    ],
)
def test_output_sizes_are_exact(
    client: TestClient, signer: URLSigner, options: dict[str, Any], size: tuple[int, int]
) -> None:
    response = get(client, signer, LANDSCAPE, **options)
    assert response.status_code == 200, response.text
    assert decode(response.content).size == size


@pytest.mark.parametrize("fit", ["contain", "cover", "fill", "pad"])
@pytest.mark.parametrize("gravity", [*GRAVITIES, (0.1, 0.9)])
def test_every_fit_and_gravity_gives_the_box(client: TestClient, signer: URLSigner, fit: str, gravity: Any) -> None:
    response = get(client, signer, PORTRAIT, width=120, height=90, fit=fit, gravity=gravity)
    assert response.status_code == 200
    expected = (68, 90) if fit == "contain" else (120, 90)
    assert decode(response.content).size == expected


@pytest.mark.parametrize(("fmt", "pillow_name"), FORMATS.items())
def test_output_formats(client: TestClient, signer: URLSigner, fmt: str, pillow_name: str) -> None:
    response = get(client, signer, LANDSCAPE, width=160, height=120, fit="cover", format=fmt, quality=70)
    assert response.status_code == 200
    assert response.headers["content-type"] == f"image/{fmt}"
    image = decode(response.content)
    assert image.format == pillow_name
    assert image.size == (160, 120)


@pytest.mark.parametrize(
    ("source", "media_type"),
    [(LANDSCAPE, "image/jpeg"), (PORTRAIT, "image/png"), ("photos/small.webp", "image/webp")],
)
def test_no_format_keeps_the_source_kind(client: TestClient, signer: URLSigner, source: str, media_type: str) -> None:
    response = get(client, signer, source, width=50)
    assert response.headers["content-type"] == media_type


def test_gravity_picks_the_right_part(client: TestClient, signer: URLSigner) -> None:
    # Cover a 1200x900 image into a tall box: only a vertical strip survives.
    west = decode(get(client, signer, LANDSCAPE, width=50, height=200, fit="cover", gravity="west").content)
    east = decode(get(client, signer, LANDSCAPE, width=50, height=200, fit="cover", gravity="east").content)
    assert _is_close(west.convert("RGB").getpixel((25, 20)), (220, 30, 30))  # red top-left quadrant
    assert _is_close(east.convert("RGB").getpixel((25, 20)), (30, 200, 30))  # green top-right quadrant
    focal = decode(get(client, signer, LANDSCAPE, width=50, height=200, fit="cover", gravity=(0.9, 0.5)).content)
    assert _is_close(focal.convert("RGB").getpixel((25, 190)), (230, 230, 30))  # yellow bottom-right


def test_crop_box_selects_source_pixels(client: TestClient, signer: URLSigner) -> None:
    image = decode(get(client, signer, LANDSCAPE, width=40, crop=(650, 500, 400, 300)).content)
    assert _is_close(image.convert("RGB").getpixel((20, 15)), (230, 230, 30))


def test_pad_fills_with_background(client: TestClient, signer: URLSigner) -> None:
    image = decode(
        get(client, signer, LANDSCAPE, width=200, height=200, fit="pad", format="png", background="#00ff00").content
    )
    assert image.size == (200, 200)
    assert _is_close(image.convert("RGB").getpixel((100, 5)), (0, 255, 0))
    transparent = decode(get(client, signer, LANDSCAPE, width=200, height=200, fit="pad", format="png").content)
    assert transparent.mode == "RGBA"
    assert transparent.getpixel((100, 5))[3] == 0  # type: ignore[index]
    white = decode(get(client, signer, LANDSCAPE, width=200, height=200, fit="pad", format="jpeg").content)
    assert _is_close(white.convert("RGB").getpixel((100, 5)), (255, 255, 255))


def test_exif_orientation_is_applied_and_removed(client: TestClient, signer: URLSigner) -> None:
    response = get(client, signer, "hopper_orientation_6.jpg", width=64)
    image = decode(response.content)
    assert image.size == (64, 64)
    assert image.getexif().get(0x0112) is None


def test_alpha_is_flattened_for_jpeg(client: TestClient, signer: URLSigner) -> None:
    png = decode(get(client, signer, "rgba_32x32.png", width=32).content)
    assert png.mode == "RGBA"
    jpeg = decode(get(client, signer, "rgba_32x32.png", width=32, format="jpeg").content)
    assert jpeg.mode == "RGB"


def test_success_headers(client: TestClient, signer: URLSigner) -> None:
    response = get(client, signer, LANDSCAPE, width=100)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["content-length"] == str(len(response.content))
    assert response.headers["etag"].startswith('"') and response.headers["etag"].endswith('"')
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "vary" not in response.headers


def test_etag_is_deterministic_across_instances(client_factory: Callable[..., TestClient], signer: URLSigner) -> None:
    first, second = client_factory(), client_factory()
    path = signer.path(LANDSCAPE, width=100, format="webp")
    assert first.get(path).headers["etag"] == second.get(path).headers["etag"]
    assert first.get(path).headers["etag"] != first.get(signer.path(LANDSCAPE, width=101)).headers["etag"]


def test_conditional_get_and_head(client: TestClient, signer: URLSigner) -> None:
    path = signer.path(LANDSCAPE, width=100)
    full = client.get(path)
    etag = full.headers["etag"]
    not_modified = client.get(path, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    assert client.get(path, headers={"If-None-Match": '"other", ' + etag}).status_code == 304
    assert client.get(path, headers={"If-None-Match": '"other"'}).status_code == 200
    head = client.head(path)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(full.content))
    assert head.headers["content-type"] == "image/jpeg"


def test_format_auto_varies_on_accept(client: TestClient, signer: URLSigner) -> None:
    path = signer.path(LANDSCAPE, width=100, format="auto")
    avif = client.get(path, headers={"Accept": "image/avif,image/webp,*/*"})
    webp = client.get(path, headers={"Accept": "image/avif;q=0,image/webp,*/*"})
    plain = client.get(path, headers={"Accept": "*/*"})
    assert avif.headers["content-type"] == "image/avif"
    assert webp.headers["content-type"] == "image/webp"
    assert plain.headers["content-type"] == "image/jpeg"
    assert {avif.headers["vary"], webp.headers["vary"], plain.headers["vary"]} == {"Accept"}
    assert len({avif.headers["etag"], webp.headers["etag"], plain.headers["etag"]}) == 3
    revalidated = client.get(path, headers={"Accept": "image/webp", "If-None-Match": webp.headers["etag"]})
    assert revalidated.status_code == 304
    assert revalidated.headers["vary"] == "Accept"


def test_rotated_keys(client_factory: Callable[..., TestClient]) -> None:
    client = client_factory(keys=("new-key", TEST_KEY))
    old = URLSigner(key=TEST_KEY).path(LANDSCAPE, width=50)
    new = URLSigner(key="new-key,old-key").path(LANDSCAPE, width=50)
    assert client.get(old).status_code == 200
    assert client.get(new).status_code == 200
    assert client.get(URLSigner(key="retired").path(LANDSCAPE, width=50)).status_code == 403


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p.replace("/100x/", "/101x/"),  # changed option
        lambda p: p.replace("landscape", "portrait"),  # changed source
        lambda p: "/" + ("A" * 43) + p[44:],  # forged signature
        lambda p: p[:5] + p[6:],  # truncated signature
        lambda p: "/" + p.split("/", 2)[2],  # no signature at all
    ],
)
def test_tampered_urls_are_forbidden(client: TestClient, signer: URLSigner, mutate: Callable[[str], str]) -> None:
    path = signer.path(LANDSCAPE, width=100)
    response = client.get(mutate(path))
    assert response.status_code == 403
    assert response.headers["cache-control"] == "no-store"
    assert response.text.strip() == "Invalid signature"


def test_foreign_key_is_forbidden(client: TestClient) -> None:
    assert client.get(URLSigner(key="someone-else").path(LANDSCAPE, width=100)).status_code == 403


def _signed(signer: URLSigner, payload: str) -> str:
    return f"/{signer._signer.sign(payload)}/{payload}"


@pytest.mark.parametrize(
    "payload",
    [
        "100X/photos/landscape.jpg",
        "100x/fit:contain/photos/landscape.jpg",
        "100x/q:80/f:webp/photos/landscape.jpg",
        "100x/zoom:2/photos/landscape.jpg",
        "100x/photos/landscape%2Ejpg",
        "100x",
        "5000x/photos/landscape.jpg",  # over the output limit
        "2048x/dpr:3/photos/landscape.jpg",  # over the output limit after dpr
    ],
)
def test_signed_but_malformed_or_non_canonical_paths_get_400(
    client: TestClient, signer: URLSigner, payload: str
) -> None:
    response = client.get(_signed(signer, payload))
    assert response.status_code == 400
    assert response.headers["cache-control"] == "public, max-age=60"


def test_query_strings_are_refused(client: TestClient, signer: URLSigner) -> None:
    assert client.get(signer.path(LANDSCAPE, width=100) + "?v=2").status_code == 400


def test_crop_outside_the_image_is_400(client: TestClient, signer: URLSigner) -> None:
    response = get(client, signer, LANDSCAPE, width=100, crop=(1000, 0, 400, 100))
    assert response.status_code == 400
    assert "crop" in response.text


@pytest.mark.parametrize(
    ("source", "status"),
    [
        ("photos/missing.jpg", 404),
        ("photos", 404),  # a directory
        # '..' segments: the client refuses to sign them (tests/test_security.py, ALIASES).
        ("/etc/passwd", 403),
        ("photos/%2e%2e/%2e%2e/outside.jpg", 404),  # a literal name, decoded once only
        ("escape/outside.jpg", 403),  # a symlink out of the root
        ("https://example.com/a.jpg", 403),  # remote sources are off without an allowlist
    ],
)
def test_sources_outside_the_root_are_refused(
    client: TestClient, signer: URLSigner, media_root: Any, source: str, status: int
) -> None:
    outside = media_root.parent / "outside.jpg"
    outside.write_bytes((media_root / LANDSCAPE).read_bytes())
    (media_root / "escape").symlink_to(media_root.parent)
    response = get(client, signer, source, width=100)
    assert response.status_code == status
    assert str(media_root) not in response.text


def test_undecodable_and_unsupported_sources(client: TestClient, signer: URLSigner, media_root: Any) -> None:
    (media_root / "notes.jpg").write_bytes(b"this is not an image")
    (media_root / "empty.png").write_bytes(b"")
    (media_root / "drawing.svg").write_bytes(b'<svg xmlns="http://www.w3.org/2000/svg"/>')
    (media_root / "truncated.jpg").write_bytes((media_root / LANDSCAPE).read_bytes()[:5000])
    assert get(client, signer, "notes.jpg", width=10).status_code == 415
    assert get(client, signer, "empty.png", width=10).status_code == 415
    assert get(client, signer, "drawing.svg", width=10).status_code == 415
    truncated = get(client, signer, "truncated.jpg", width=10)
    assert truncated.status_code == 422
    assert truncated.headers["cache-control"] == "public, max-age=60"


def test_source_over_the_pixel_limit_is_413(client_factory: Callable[..., TestClient], signer: URLSigner) -> None:
    client = client_factory(max_source_pixels=1_000_000)
    assert get(client, signer, LANDSCAPE, width=10).status_code == 413  # 1.08 MP


def test_source_over_the_byte_limit_is_413(client_factory: Callable[..., TestClient], signer: URLSigner) -> None:
    client = client_factory(max_source_bytes=1000)
    assert get(client, signer, LANDSCAPE, width=10).status_code == 413


def test_healthz_and_production_index(client: TestClient) -> None:
    assert client.get("/healthz").text == "ok"
    index = client.get("/")
    assert index.status_code == 200
    assert "<img" not in index.text


def test_mounted_under_a_prefix(settings_factory: Callable[..., Any]) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from thumbsvc.app import create_app

    outer = Starlette(routes=[Mount("/img", app=create_app(settings_factory()))])
    signer = URLSigner(key=TEST_KEY, base_url="http://testserver/img")
    with TestClient(outer) as client:
        response = client.get(signer.url(LANDSCAPE, width=60))
    assert response.status_code == 200
    assert decode(response.content).size == (60, 45)


def _is_close(pixel: Any, expected: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], expected, strict=True))


def test_error_max_age_is_configurable(client_factory: Callable[..., TestClient], signer: URLSigner) -> None:
    short = client_factory(error_max_age_s=5)
    assert get(short, signer, "photos/missing.jpg", width=10).headers["cache-control"] == "public, max-age=5"
    off = client_factory(error_max_age_s=0)
    assert get(off, signer, "photos/missing.jpg", width=10).headers["cache-control"] == "no-store"
    assert get(off, signer, LANDSCAPE, width=10).headers["cache-control"] == "public, max-age=31536000, immutable"
