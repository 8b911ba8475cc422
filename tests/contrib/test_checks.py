"""Django system checks report a missing key or base URL and bad presets, by id."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.template import Context, Template
from django.test import override_settings

from thumbsvc.contrib.django.checks import check_settings


def ids(**overrides: Any) -> list[str]:
    with override_settings(**overrides):
        return [message.id for message in check_settings()]


def test_a_complete_configuration_passes() -> None:
    assert ids() == []
    assert ids(THUMBSVC_KEY=["new", "old"], THUMBSVC_BASE_URL="/img") == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"THUMBSVC_KEY": None}, ["thumbsvc.E001"]),
        ({"THUMBSVC_KEY": " , "}, ["thumbsvc.E001"]),
        ({"THUMBSVC_BASE_URL": ""}, ["thumbsvc.E002"]),
        ({"THUMBSVC_KEY": "", "THUMBSVC_BASE_URL": None}, ["thumbsvc.E001", "thumbsvc.E002"]),
        ({"THUMBSVC_KEY": 12345}, ["thumbsvc.E003"]),
        ({"THUMBSVC_BASE_URL": "img.example.com"}, ["thumbsvc.E004"]),
        ({"THUMBSVC_PRESETS": {"card": {"width": 400, "fit": "squash"}}}, ["thumbsvc.E003"]),
        ({"THUMBSVC_PRESETS": {"card": {"widht": 400}}}, ["thumbsvc.E003"]),
        ({"THUMBSVC_PRESETS": ["card"]}, ["thumbsvc.E003"]),
        ({"THUMBSVC_DEFAULTS": {"quality": 101}}, ["thumbsvc.E003"]),
        ({"THUMBSVC_DENSITIES": "1,two"}, ["thumbsvc.E003"]),
    ],
)
def test_bad_settings_are_reported(overrides: dict[str, Any], expected: list[str]) -> None:
    assert ids(**overrides) == expected


def test_messages_say_what_to_do() -> None:
    with override_settings(THUMBSVC_KEY=None):
        (error,) = check_settings()
    assert "THUMBSVC_KEY is not set" in error.msg and "THUMBSVC_KEY" in error.hint
    with override_settings(THUMBSVC_PRESETS={"card": {"width": 400, "fit": "squash"}}):
        (error,) = check_settings()
    assert "preset 'card'" in error.msg or "fit must be one of" in error.msg


def test_manage_py_check_fails_on_a_missing_key() -> None:
    with override_settings(THUMBSVC_KEY=None), pytest.raises(SystemCheckError, match=r"thumbsvc\.E001"):
        call_command("check")
    call_command("check")


@pytest.mark.parametrize("name", ["THUMBSVC_KEY", "THUMBSVC_BASE_URL"])
def test_rendering_without_a_setting_says_which(name: str) -> None:
    with override_settings(**{name: None}), pytest.raises(ImproperlyConfigured, match=name):
        Template("{% load thumbsvc %}{% thumbnail_url 'a.jpg' 10 %}").render(Context())
