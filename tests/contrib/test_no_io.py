"""Rendering thumbnails makes no storage call, no database query and no network connection."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection
from django.template import Context, Template, engines
from django.test.utils import CaptureQueriesContext

from tests.contrib.conftest import STORAGE, Photo

NETWORK_EVENTS = {
    "socket.connect",
    "socket.getaddrinfo",
    "socket.gethostbyname",
    "socket.sendto",
    "http.client.connect",
}
# Audit hooks cannot be removed, so one hook records into whichever list is current.
_recording: list[list[str]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _recording and event in NETWORK_EVENTS:
        _recording[-1].append(event)


sys.addaudithook(_audit)


@contextmanager
def watch() -> Iterator[tuple[list[str], list[str], CaptureQueriesContext]]:
    """Record network events, storage calls and queries made inside the block."""
    network: list[str] = []
    storage_before = len(STORAGE.calls)
    storage: list[str] = []
    _recording.append(network)
    try:
        with CaptureQueriesContext(connection) as queries:
            yield network, storage, queries
    finally:
        _recording.pop()
        storage.extend(STORAGE.calls[storage_before:])


PAGE = """{% load thumbsvc %}
{% for p in photos %}
<figure>
  {% thumbnail_img p.image 240 180 fit="cover" focal=p.focal_point alt=p.title thumbhash=hash %}
  {% thumbnail_img p.image 240 180 alt=p.title widths="240,480" %}
  {% thumbnail_picture p.image 300 200 formats="avif,webp" alt=p.title thumbhash=hash thumbhash_image=True %}
  <a href="{% thumbnail_url p.image 1200 %}">{% thumbnail_srcset p.plain 100 100 fit="pad" %}</a>
</figure>
{% endfor %}"""


def test_the_watch_sees_storage_queries_and_connections(photos: list[Photo]) -> None:
    """Without this, the test below could pass with a blind watch."""
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        with watch() as (network, storage, queries):
            photos[0].image.url  # noqa: B018 - a storage call
            Photo.objects.count()
            with socket.create_connection(listener.getsockname(), timeout=2):
                pass
    finally:
        listener.close()
    assert storage == ["url"]
    assert len(queries.captured_queries) == 1
    assert "socket.connect" in network


def test_rendering_a_page_touches_no_storage_database_or_network(photos: list[Photo]) -> None:
    template = Template(PAGE)
    with watch() as (network, storage, queries):
        page = template.render(Context({"photos": photos, "hash": "2WgGDYbL/blNTouIaBiXZydsn1f2"}))
    assert page.count("<img ") == 3 * len(photos)
    assert page.count("data-thumbhash=") == page.count("background-color:") == 2 * len(photos)
    assert page.count("background-image:url(data:image/png;base64,") == len(photos)
    assert (network, storage, queries.captured_queries) == ([], [], [])


def test_jinja2_rendering_touches_nothing_either(photos: list[Photo]) -> None:
    template = engines["jinja2"].from_string(
        "{% for p in photos %}{{ thumbnail_img(p.image, 240, 180, alt=p.title) }}"
        "{{ thumbnail_picture(p.image, 240, 180, fit='cover', focal=p.focal_point) }}{% endfor %}"
    )
    with watch() as (network, storage, queries):
        page = template.render({"photos": photos})
    assert page.count("<img ") == 2 * len(photos)
    assert (network, storage, queries.captured_queries) == ([], [], [])
