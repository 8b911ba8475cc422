"""Jinja2 globals: ``thumbnail_url``, ``thumbnail_srcset``, ``thumbnail_img``, ``thumbnail_picture``.

    env = jinja2.Environment(autoescape=True)
    install(env, ThumbnailTags(URLSigner(key, "https://img.example.com")))

    <img src="{{ thumbnail_url('photos/cat.jpg', 300, 200, fit='cover') }}">
    {{ thumbnail_img(photo.image, 300, 200, alt=photo.title) }}

The arguments are those of the Django tags. ``thumbnail_img`` and ``thumbnail_picture``
return ``Markup`` (escaped already); the URL and srcset helpers return plain strings,
which an autoescaping environment escapes in attributes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jinja2 import Environment
from markupsafe import Markup

from thumbsvc.contrib.thumbnails import ThumbnailTags

__all__ = ["install"]


def install(env: Environment, tags: ThumbnailTags | Callable[[], ThumbnailTags]) -> Environment:
    """Add the thumbnail globals to ``env`` and return it.

    ``tags`` is a ``ThumbnailTags`` or a function returning one, called on every
    use (so it can follow settings that change).
    """
    get = tags if callable(tags) and not isinstance(tags, ThumbnailTags) else lambda: tags

    def thumbnail_url(source: Any, width: Any = None, height: Any = None, **options: Any) -> str:
        return get().url(source, width, height, **options)

    def thumbnail_srcset(source: Any, width: Any = None, height: Any = None, **options: Any) -> str:
        return get().srcset(source, width, height, **options)

    def thumbnail_img(source: Any, width: Any = None, height: Any = None, **options: Any) -> Markup:
        return Markup(get().img(source, width, height, **options))

    def thumbnail_picture(source: Any, width: Any = None, height: Any = None, **options: Any) -> Markup:
        return Markup(get().picture(source, width, height, **options))

    env.globals.update(
        thumbnail_url=thumbnail_url,
        thumbnail_srcset=thumbnail_srcset,
        thumbnail_img=thumbnail_img,
        thumbnail_picture=thumbnail_picture,
    )
    return env
