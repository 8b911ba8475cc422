"""``{% load thumbsvc %}``: thumbnail_url, thumbnail_srcset, thumbnail_img, thumbnail_picture.

Each tag takes the source, then optionally width and height (or one ``"300x200"``),
then keyword options. ``thumbnail_url`` and ``thumbnail_srcset`` also take ``as var``.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.safestring import SafeString, mark_safe

from thumbsvc.contrib.django.conf import get_tags

register = template.Library()

# img and picture are marked safe because ThumbnailTags escapes every attribute value it writes.


@register.simple_tag
def thumbnail_url(source: Any, width: Any = None, height: Any = None, **options: Any) -> str:
    """``{% thumbnail_url photo.image 300 200 fit="cover" %}``: the signed URL (escaped on output)."""
    return get_tags().url(source, width, height, **options)


@register.simple_tag
def thumbnail_srcset(source: Any, width: Any = None, height: Any = None, **options: Any) -> str:
    """``{% thumbnail_srcset photo.image 300 200 widths="320,640" %}`` or ``densities="1,2"``."""
    return get_tags().srcset(source, width, height, **options)


@register.simple_tag
def thumbnail_img(source: Any, width: Any = None, height: Any = None, **options: Any) -> SafeString:
    """``{% thumbnail_img photo.image 300 200 alt=photo.title %}``: a complete ``<img>``."""
    return mark_safe(get_tags().img(source, width, height, **options))


@register.simple_tag
def thumbnail_picture(source: Any, width: Any = None, height: Any = None, **options: Any) -> SafeString:
    """``{% thumbnail_picture photo.image 300 200 formats="avif,webp" %}``: ``<picture>`` with fallback."""
    return mark_safe(get_tags().picture(source, width, height, **options))
