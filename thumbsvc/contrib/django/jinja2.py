"""A Jinja2 environment for Django's ``Jinja2`` template backend, with the thumbnail globals.

``TEMPLATES = [{"BACKEND": "django.template.backends.jinja2.Jinja2",
"OPTIONS": {"environment": "thumbsvc.contrib.django.jinja2.environment"}}]``
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment

from thumbsvc.contrib.django.conf import get_tags
from thumbsvc.contrib.jinja2 import install


def environment(**options: Any) -> Environment:
    """Return a Jinja2 ``Environment`` whose thumbnail globals follow Django's settings."""
    env = Environment(**options)
    install(env, get_tags)
    return env
