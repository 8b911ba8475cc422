from __future__ import annotations

import subprocess
import sys

import pytest

from thumbsvc.client import URLSigner


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
