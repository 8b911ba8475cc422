from __future__ import annotations

from django.apps import AppConfig
from django.core import checks
from django.core.signals import setting_changed


class ThumbsvcConfig(AppConfig):
    name = "thumbsvc.contrib.django"
    label = "thumbsvc"
    verbose_name = "thumbsvc thumbnails"

    def ready(self) -> None:
        from thumbsvc.contrib.django import conf
        from thumbsvc.contrib.django.checks import check_settings

        checks.register(check_settings, "thumbsvc")
        setting_changed.connect(conf.reset, dispatch_uid="thumbsvc.contrib.django.conf.reset")
