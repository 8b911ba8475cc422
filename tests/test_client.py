from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from thumbsvc.app import create_app
from thumbsvc.client import URLSigner
from thumbsvc.config import Settings


def test_url_shape_matches_the_contract() -> None:
    signer = URLSigner(key="k", base_url="https://img.example.com/")
    url = signer.url(
        "photos/cat.jpg", width=300, height=200, fit="cover", gravity="smart", format="webp", quality=80, dpr=2
    )
    prefix = "https://img.example.com/"
    assert url.startswith(prefix)
    signature, rest = url[len(prefix) :].split("/", 1)
    assert len(signature) == 43
    assert rest == "300x200/fit:cover/g:smart/f:webp/q:80/dpr:2/photos/cat.jpg"


def test_base_url_prefix_is_not_signed() -> None:
    plain = URLSigner(key="k", base_url="https://img.example.com").path("a.jpg", width=10)
    prefixed = URLSigner(key="k", base_url="https://cdn.example.com/img").url("a.jpg", width=10)
    assert prefixed == "https://cdn.example.com/img" + plain


def test_key_list_signs_with_the_first() -> None:
    assert URLSigner(key="new,old").path("a.jpg", width=1) == URLSigner(key="new").path("a.jpg", width=1)
    assert URLSigner(key=["new", "old"]).path("a.jpg", width=1) == URLSigner(key="new").path("a.jpg", width=1)


@pytest.mark.parametrize(
    ("source", "options"),
    [
        ("", {"width": 10}),
        ("a.jpg", {"width": -1}),
        ("a.jpg", {"fit": "zoom"}),
        ("a.jpg", {"colour": "red"}),
    ],
)
def test_bad_arguments_raise_value_error(source: str, options: dict[str, object]) -> None:
    with pytest.raises((ValueError, TypeError)):
        URLSigner(key="k").url(source, **options)


def test_srcset_by_widths_keeps_the_aspect_ratio() -> None:
    signer = URLSigner(key="k")
    srcset = signer.srcset("a.jpg", widths=[320, 640], width=300, height=200, fit="cover")
    entries = [entry.rsplit(" ", 1) for entry in srcset.split(", ")]
    assert [descriptor for _, descriptor in entries] == ["320w", "640w"]
    assert "/320x213/fit:cover/a.jpg" in entries[0][0]
    assert "/640x427/fit:cover/a.jpg" in entries[1][0]
    assert "," not in "".join(url for url, _ in entries)


def test_srcset_by_densities() -> None:
    srcset = URLSigner(key="k").srcset("a.jpg", densities=[1, 2, 1.5], width=300)
    descriptors = [entry.rsplit(" ", 1)[1] for entry in srcset.split(", ")]
    assert descriptors == ["1x", "2x", "1.5x"]
    assert "/300x/dpr:2/a.jpg 2x" in srcset


def test_srcset_needs_exactly_one_kind() -> None:
    with pytest.raises(ValueError):
        URLSigner(key="k").srcset("a.jpg", width=10)
    with pytest.raises(ValueError):
        URLSigner(key="k").srcset("a.jpg", widths=[1], densities=[1])


def test_client_imports_nothing_heavy() -> None:
    code = (
        "import sys, thumbsvc.client; "
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('PIL', 'starlette', 'httpx', 'uvicorn', 'anyio')]; "
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_jpg_means_jpeg_and_the_url_stays_canonical() -> None:
    signer = URLSigner(key="k")
    assert signer.path("a.png", width=10, format="jpg") == signer.path("a.png", width=10, format="jpeg")
    assert signer.path("a.png", width=10, format="JPG").endswith("/10x/f:jpeg/a.png")


@pytest.mark.parametrize(
    ("options", "side"),
    [
        ({"width": 5000}, "width 5000 at dpr 1 is 5000 px"),
        ({"height": 4097}, "height 4097 at dpr 1 is 4097 px"),
        ({"width": 2100, "dpr": 2}, "width 2100 at dpr 2 is 4200 px"),
        ({"width": 1400, "height": 1400, "dpr": 3}, "width 1400 at dpr 3 is 4200 px"),
    ],
)
def test_sizes_over_a_default_servers_limit_are_refused(options: dict[str, object], side: str) -> None:
    # A default server answers 400 to these: the client says so before anyone publishes the URL.
    with pytest.raises(ValueError) as info:
        URLSigner(key="k").url("a.jpg", **options)
    assert side in str(info.value) and "4096 px a side" in str(info.value) and "max_size=" in str(info.value)
    assert URLSigner(key="k", max_size=8192).url("a.jpg", **options)


def test_the_largest_default_box_is_signed() -> None:
    assert URLSigner(key="k").path("a.jpg", width=4096, height=2048, dpr=1).endswith("/4096x2048/a.jpg")
    assert URLSigner(key="k").path("a.jpg", width=2048, dpr=2).endswith("/2048x/dpr:2/a.jpg")
    srcset = URLSigner(key="k").srcset("a.jpg", densities=[1, 2], width=2048)
    assert srcset.count(" ") == 3
    with pytest.raises(ValueError, match="max_size"):
        URLSigner(key="k").srcset("a.jpg", densities=[1, 3], width=2048)


@pytest.mark.parametrize("max_size", [0, -1, 16385, 1.5, True, "4096"])
def test_max_size_is_checked(max_size: object) -> None:
    with pytest.raises(ValueError, match="max_size must be an integer from 1 to 16384"):
        URLSigner(key="k", max_size=max_size)  # type: ignore[arg-type]


def test_a_limited_signer_matches_a_limited_server(media_root: Path) -> None:
    settings = Settings(keys=("k",), media_root=str(media_root), max_output_px=600)
    signer = URLSigner(key="k", max_size=600)
    with TestClient(create_app(settings)) as client:
        assert client.get(signer.path("photos/landscape.jpg", width=600, upscale=True)).status_code == 200
        with pytest.raises(ValueError):
            signer.path("photos/landscape.jpg", width=601)
        # The server refuses the box the client would refuse.
        assert client.get(URLSigner(key="k").path("photos/landscape.jpg", width=601)).status_code == 400
