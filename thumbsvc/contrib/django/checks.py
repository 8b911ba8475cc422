"""System checks (``manage.py check``): report what would stop thumbnail URLs from working."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from thumbsvc.contrib.django.conf import build_tags, read_keys


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Return errors for a missing key or base URL and for invalid defaults or presets."""
    errors: list[checks.CheckMessage] = []
    try:
        keys = read_keys(getattr(settings, "THUMBSVC_KEY", None))
    except TypeError as exc:
        return [checks.Error(str(exc), id="thumbsvc.E003")]
    if not keys:
        errors.append(
            checks.Error(
                "THUMBSVC_KEY is not set.",
                hint="Set it to the key the thumbsvc service verifies with (its THUMBSVC_KEY).",
                id="thumbsvc.E001",
            )
        )
    base_url = getattr(settings, "THUMBSVC_BASE_URL", None)
    if not base_url:
        errors.append(
            checks.Error(
                "THUMBSVC_BASE_URL is not set.",
                hint="Set it to the address of the thumbsvc service, e.g. 'https://img.example.com'.",
                id="thumbsvc.E002",
            )
        )
    elif not isinstance(base_url, str) or not base_url.startswith(("http://", "https://", "/")):
        errors.append(
            checks.Error(
                f"THUMBSVC_BASE_URL has value {base_url!r}.",
                hint="Use an absolute http(s) URL, or a path starting with '/' on this site.",
                id="thumbsvc.E004",
            )
        )
    if not errors:
        try:
            build_tags(settings)
        except ImproperlyConfigured as exc:
            errors.append(checks.Error(str(exc), id="thumbsvc.E003"))
    return errors
