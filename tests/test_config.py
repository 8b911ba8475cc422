from __future__ import annotations

from pathlib import Path

import pytest

from thumbsvc.config import SAMPLES_DIR, ConfigError, Settings


def test_defaults_are_the_embedded_development_mode() -> None:
    settings = Settings.from_env({})
    assert settings.dev_mode
    assert settings.effective_media_root == str(SAMPLES_DIR)
    assert settings.signing_keys == (settings.dev_key,)
    assert Settings().dev_key != Settings().dev_key  # a random key per process


def test_environment_is_read_and_cast(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "THUMBSVC_KEY": "new, old",
            "THUMBSVC_MEDIA_ROOT": str(tmp_path),
            "THUMBSVC_ALLOWED_SOURCES": "images.example.com,*.cdn.example.com",
            "THUMBSVC_RENDER_SLOTS": "3",
            "THUMBSVC_QUEUE_TIMEOUT": "0.5",
            "THUMBSVC_CACHE_BYTES": "0",
            "THUMBSVC_LOG_JSON": "true",
            "PATH": "/usr/bin",
        }
    )
    assert not settings.dev_mode
    assert settings.keys == ("new", "old")
    assert settings.media_root == str(tmp_path)
    assert settings.effective_media_root == str(tmp_path)
    assert settings.allowed_sources == ("images.example.com", "*.cdn.example.com")
    assert settings.render_slots == 3
    assert settings.queue_size == 12
    assert settings.queue_timeout_s == 0.5
    assert settings.cache_bytes == 0
    assert settings.log_json is True


def test_production_mode_has_no_media_root_unless_set() -> None:
    assert Settings(keys=("k",)).effective_media_root is None


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"THUMBSVC_RENDER_SLOTS": "many"}, "Config 'THUMBSVC_RENDER_SLOTS' has value 'many'. Not a valid int."),
        ({"THUMBSVC_RENDER_SLOTS": "0"}, "THUMBSVC_RENDER_SLOTS"),
        ({"THUMBSVC_QUEUE_TIMEOUT": "soon"}, "THUMBSVC_QUEUE_TIMEOUT"),
        ({"THUMBSVC_QUEUE_TIMEOUT": "0"}, "THUMBSVC_QUEUE_TIMEOUT"),
        ({"THUMBSVC_CACHE_BYTES": "-1"}, "THUMBSVC_CACHE_BYTES"),
        ({"THUMBSVC_LOG_JSON": "maybe"}, "THUMBSVC_LOG_JSON"),
        ({"THUMBSVC_MEDIA_ROOT": "/no/such/dir"}, "THUMBSVC_MEDIA_ROOT"),
        ({"THUMBSVC_ALLOW_PRIVATE_NETWORKS": "10.0.0.0/33"}, "THUMBSVC_ALLOW_PRIVATE_NETWORKS"),
        ({"THUMBSVC_MAX_SOURCE_PIXEL": "1"}, "Unknown setting 'THUMBSVC_MAX_SOURCE_PIXEL'"),
    ],
)
def test_bad_configuration_names_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(environ)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
