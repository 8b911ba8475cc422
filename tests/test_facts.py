"""``f:json``: the facts of a thumbnail (source and output sizes, colours, ThumbHash) from the same geometry code.

Checked against what the same URL without ``f:json`` really renders, over real corpus images.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from starlette.testclient import TestClient

from tests.helpers import decode, make_photo
from tests.live import sample
from thumbsvc import pipeline
from thumbsvc.client import URLSigner
from thumbsvc.decode import Limits
from thumbsvc.options import make_options
from thumbsvc.placeholders import parse_thumbhash, thumbhash_aspect_ratio, thumbhash_average

KEYS = {"source", "output", "average", "dominant", "thumbhash"}
CASES = [
    ("photos/immich__craft-beer.jpg", {"width": 400, "height": 300, "fit": "cover"}),
    ("orientation/exiforient__Landscape_6.jpg", {"width": 200}),
    ("png/pngsuite__basn6a08.png", {"width": 64, "upscale": True}),
    ("animated/sharp__rotating-squares.webp", {"width": 50}),
    ("color/leptonrs__fourcolorchannels.jpg", {"width": 300, "height": 300, "fit": "pad", "background": "#102030"}),
    ("edge/thumbor__940x2.png", {"width": 300, "height": 200, "fit": "fill"}),
    ("photos/lepton__iphone.jpg", {"width": 120, "height": 120, "fit": "cover", "gravity": "smart"}),
]


def facts(client: TestClient, signer: URLSigner, source: str, **options: object) -> dict[str, object]:
    response = client.get(signer.path(source, format="json", **options))  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    body = json.loads(response.content)
    assert isinstance(body, dict)
    return body


@pytest.mark.corpus
@pytest.mark.parametrize(("source", "options"), CASES, ids=[case[0] for case in CASES])
def test_facts_agree_with_the_image_the_same_url_renders(
    client_factory: Callable[..., TestClient], signer: URLSigner, corpus: Path, source: str, options: dict[str, object]
) -> None:
    client = client_factory(media_root=str(corpus))
    body = facts(client, signer, source, **options)
    assert set(body) == KEYS  # nothing else of the source: no EXIF, no names
    image_response = client.get(signer.path(source, **options))  # type: ignore[arg-type]
    image = decode(image_response.content)
    output = body["output"]
    assert output == {"width": image.width, "height": image.height, "format": image.format.lower()}  # type: ignore[union-attr]
    with Image.open(corpus / source) as original:
        upright = original.size if original.getexif().get(0x0112, 1) < 5 else original.size[::-1]
        assert body["source"] == {
            "width": upright[0],
            "height": upright[1],
            "format": {"MPO": "jpeg"}.get(original.format or "", (original.format or "").lower()),
            "alpha": original.mode in ("RGBA", "LA", "PA") or "transparency" in original.info,
            "frames": getattr(original, "n_frames", 1) if original.format != "MPO" else 1,
        }
    # The hash describes the output: its shape and its colour.
    hash_ = parse_thumbhash(str(body["thumbhash"]))
    aspect = image.width / image.height
    assert abs(thumbhash_aspect_ratio(hash_) - aspect) / aspect < 0.15 or min(image.size) < 8
    red, green, blue, _ = thumbhash_average(hash_)
    average = str(body["average"])
    assert len(average) == 7 and average.startswith("#")
    for channel, value in zip((red, green, blue), (average[1:3], average[3:5], average[5:7]), strict=True):
        assert abs(channel * 255 - int(value, 16)) < 40


def test_colours_of_a_known_picture(client: TestClient, signer: URLSigner, put: Callable[[str, bytes], str]) -> None:
    image = Image.new("RGB", (400, 300), (20, 60, 230))  # mostly blue
    image.paste((240, 20, 20), (0, 0, 120, 300))  # 30 % red
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    body = facts(client, signer, put("two.png", buffer.getvalue()), width=200)
    assert body["dominant"] == "#143ce6"
    average = str(body["average"])
    expected = [round(0.3 * r + 0.7 * b) for r, b in zip((240, 20, 20), (20, 60, 230), strict=True)]
    assert all(abs(int(average[1 + 2 * i : 3 + 2 * i], 16) - expected[i]) <= 3 for i in range(3))


def test_json_is_cheap_a_coarse_decode_never_a_full_one(corpus: Path) -> None:
    data = (corpus / "photos" / "lepton__slrhills.jpg").read_bytes()  # 4608x3456
    job = pipeline.run(pipeline.Job(data, make_options(width=1200, format="json"), Limits()), pipeline.HEADER_STEPS)
    assert (job.eighths, job.factor) == (1, 1)  # 576 px wide: enough for a 100 px preview
    assert job.plan.size[0] <= pipeline.FACTS_PREVIEW_PX
    assert job.output_plan is not None and job.output_plan.canvas == (1200, 900)
    image = pipeline.run(pipeline.Job(data, make_options(width=1200), Limits()), pipeline.HEADER_STEPS)
    assert job.decode_bytes < image.decode_bytes / 4


def test_json_follows_the_image_rules(
    client: TestClient, signer: URLSigner, put: Callable[[str, bytes], str], media_root: Path
) -> None:
    path = signer.path("photos/landscape.jpg", width=90, format="json")
    first = client.get(path)
    assert first.headers["etag"] != client.get(signer.path("photos/landscape.jpg", width=90)).headers["etag"]
    again = client.get(path, headers={"if-none-match": first.headers["etag"]})
    assert again.status_code == 304
    head = client.head(path)
    assert head.headers["content-length"] == str(len(first.content)) and head.content == b""
    assert client.get(signer.path(put("notes.jpg", b"not an image"), format="json")).status_code == 415
    assert client.get(signer.path("missing.jpg", format="json")).status_code == 404
    assert sample(client.get("/metrics").text, "thumbsvc_renders_total") == 2
    assert "/f:json/" in signer.path("photos/landscape.jpg", width=90, format="JSON")


def test_json_of_an_animation_describes_its_first_frame(
    client: TestClient, signer: URLSigner, put: Callable[[str, bytes], str]
) -> None:
    frames = [Image.new("RGB", (60, 40), colour) for colour in ((200, 0, 0), (0, 200, 0), (0, 0, 200))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    body = facts(client, signer, put("three.gif", buffer.getvalue()), width=30)
    assert body["source"] == {"width": 60, "height": 40, "format": "gif", "alpha": False, "frames": 3}
    assert body["output"] == {"width": 30, "height": 20, "format": "gif"}
    assert str(body["dominant"])[1:3] > "a0"  # red, the first frame


def test_json_with_filters_describes_the_filtered_output(
    client: TestClient, signer: URLSigner, put: Callable[[str, bytes], str]
) -> None:
    plain = facts(client, signer, put("photo.jpg", make_photo((800, 600))), width=100)
    gray = facts(client, signer, "photo.jpg", width=100, grayscale=True)
    turned = facts(client, signer, "photo.jpg", width=100, rotate=90)
    average = str(gray["average"])
    assert average[1:3] == average[3:5] == average[5:7]
    assert plain["output"] == {"width": 100, "height": 75, "format": "jpeg"}
    assert turned["output"] == {"width": 100, "height": 133, "format": "jpeg"}
