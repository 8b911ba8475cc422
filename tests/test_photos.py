"""Real camera photos from the corpus through the app: exact sizes for every fit, with dpr and crop boxes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from starlette.testclient import TestClient

from tests.helpers import TEST_KEY, decode
from thumbsvc.app import create_app
from thumbsvc.client import URLSigner
from thumbsvc.config import Settings

PHOTOS = ["lepton__iphone.jpg", "exifsamples__HMD_Nokia_8.3_5G.jpg", "leptonrs__zeros_in_dqt_tables.jpg"]


@pytest.fixture(scope="module")
def photo_client(corpus: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(keys=(TEST_KEY, "old-key"), media_root=str(corpus / "photos")))) as client:
        yield client


def expected_size(source: tuple[int, int], options: dict[str, Any]) -> tuple[int, int]:
    width, height = source
    if "crop" in options:
        width, height = options["crop"][2:]
    dpr = options.get("dpr", 1)
    box = round(options["width"] * dpr), round(options["height"] * dpr)
    if options.get("fit", "contain") != "contain":
        return box
    scale = min(box[0] / width, box[1] / height, 1)
    return round(width * scale), round(height * scale)


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize(
    "options",
    [
        {"width": 300, "height": 200, "fit": "cover"},
        {"width": 300, "height": 200, "fit": "fill", "dpr": 2},
        {"width": 300, "height": 200, "fit": "pad", "dpr": 1.5},
        {"width": 400, "height": 300},
        {"width": 200, "height": 200, "fit": "cover", "gravity": "smart", "format": "webp"},
        {"width": 150, "height": 100, "fit": "cover", "crop": (100, 200, 900, 600), "dpr": 3},
        {"width": 250, "height": 250, "crop": (0, 0, 1000, 500)},
    ],
)
def test_signed_urls_give_exact_sizes(
    photo_client: TestClient, corpus: Path, name: str, options: dict[str, Any]
) -> None:
    with Image.open(corpus / "photos" / name) as probe:
        source = probe.size
    response = photo_client.get(URLSigner(key=TEST_KEY).path(name, **options))
    assert response.status_code == 200, response.text
    assert decode(response.content).size == expected_size(source, options)


def test_changed_option_or_signature_is_forbidden(photo_client: TestClient) -> None:
    path = URLSigner(key="old-key").path(PHOTOS[0], width=300, height=200, fit="cover")
    assert photo_client.get(path).status_code == 200
    assert photo_client.get(path.replace("fit:cover", "fit:fill")).status_code == 403
    signature = path.split("/")[1]
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    assert photo_client.get(path.replace(signature, flipped)).status_code == 403
