"""Settings adapter: ``settings.THUMBSVC_*`` in, one configured ``ThumbnailTags`` out.

============================  ===========================================================
``THUMBSVC_KEY``              signing key; a comma-separated string or a list, newest first
``THUMBSVC_BASE_URL``         where the service answers, e.g. ``https://img.example.com``
``THUMBSVC_DEFAULTS``         options every tag starts from, e.g. ``{"format": "webp"}``
``THUMBSVC_PRESETS``          named option sets: ``{"card": {"width": 400, "fit": "cover"}}``
``THUMBSVC_DENSITIES``        density variants of ``thumbnail_img``'s srcset (``(1, 2)``)
``THUMBSVC_PLACEHOLDER``      source used for an empty value (default: render nothing)
``THUMBSVC_SOURCE_PREFIX``    put before a file field's name (e.g. the bucket's URL)
``THUMBSVC_RAISE_ERRORS``     raise on a bad tag argument; default ``DEBUG``. Else log, render ""
``THUMBSVC_THUMBHASH_IMAGE``  ``thumbhash=`` paints the decoded image, not only its colour
``THUMBSVC_EXPIRES_ROUND``    ``expires_in=`` is rounded up to a multiple of this (seconds, 900)
============================  ===========================================================
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from thumbsvc.client import URLSigner
from thumbsvc.contrib.thumbnails import EXPIRES_ROUND_S, ThumbnailTags

PREFIX = "THUMBSVC_"


def read_keys(value: object) -> list[str]:
    """Given ``THUMBSVC_KEY``, return the keys, newest first; raise TypeError for a bad type."""
    if value is None:
        return []
    if isinstance(value, str):
        return [key.strip() for key in value.split(",") if key.strip()]
    if isinstance(value, Sequence) and all(isinstance(key, str) for key in value):
        return [key.strip() for key in value if key.strip()]
    raise TypeError("THUMBSVC_KEY must be a string (comma-separated for rotation) or a list of strings")


def build_tags(conf: Any) -> ThumbnailTags:
    """Given a settings object, return its ``ThumbnailTags``.

    Raise ``ImproperlyConfigured`` naming the setting that is missing or wrong.
    """
    keys = read_keys(getattr(conf, "THUMBSVC_KEY", None))
    if not keys:
        raise ImproperlyConfigured("THUMBSVC_KEY is not set: thumbnail URLs cannot be signed.")
    base_url = getattr(conf, "THUMBSVC_BASE_URL", None)
    if not base_url or not isinstance(base_url, str):
        raise ImproperlyConfigured("THUMBSVC_BASE_URL is not set: thumbnail URLs need the service's address.")
    raise_errors = getattr(conf, "THUMBSVC_RAISE_ERRORS", None)
    try:
        return ThumbnailTags(
            URLSigner(keys, base_url),
            defaults=getattr(conf, "THUMBSVC_DEFAULTS", None),
            presets=getattr(conf, "THUMBSVC_PRESETS", None),
            placeholder=getattr(conf, "THUMBSVC_PLACEHOLDER", None),
            densities=getattr(conf, "THUMBSVC_DENSITIES", (1, 2)),
            source_prefix=getattr(conf, "THUMBSVC_SOURCE_PREFIX", ""),
            raise_errors=bool(conf.DEBUG) if raise_errors is None else bool(raise_errors),
            thumbhash_image=bool(getattr(conf, "THUMBSVC_THUMBHASH_IMAGE", False)),
            expires_round=getattr(conf, "THUMBSVC_EXPIRES_ROUND", EXPIRES_ROUND_S),
        )
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f"thumbsvc settings: {exc}") from exc


@functools.cache
def get_tags() -> ThumbnailTags:
    """Return the ``ThumbnailTags`` of the project's settings (built once, rebuilt when they change)."""
    return build_tags(settings)


def reset(*, setting: str, **kwargs: Any) -> None:
    """``setting_changed`` receiver: forget the ThumbnailTags when a setting they read changes."""
    if setting.startswith(PREFIX) or setting == "DEBUG":
        get_tags.cache_clear()
