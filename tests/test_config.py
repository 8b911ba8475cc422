from __future__ import annotations

import hashlib
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.helpers import TEST_KEY
from thumbsvc.app import create_app
from thumbsvc.client import URLSigner
from thumbsvc.config import (
    FD_RESERVE,
    MAX_CONNECTIONS_DEFAULT,
    SAMPLES_DIR,
    ClientSettings,
    ConfigError,
    ServerSettings,
    Settings,
    describe_keys,
    fd_limit,
    fd_room,
    key_fingerprint,
    setting_fields,
)


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
        ({"THUMBSVC_SHUTDOWN_TIMEOUT": "inf"}, "Config 'THUMBSVC_SHUTDOWN_TIMEOUT' has value 'inf'. Not a finite"),
        ({"THUMBSVC_CACHE_BYTES": "1" + "0" * 20}, "THUMBSVC_CACHE_BYTES"),
        ({"THUMBSVC_LOG_JSON": ""}, "THUMBSVC_LOG_JSON"),
        ({"THUMBSVC_MEDIA_ROOT": ""}, "Config 'THUMBSVC_MEDIA_ROOT' has value ''. Must not be empty."),
        ({"THUMBSVC_CACHE_CONTROL": "max-age=1\x01"}, "THUMBSVC_CACHE_CONTROL"),
        ({"THUMBSVC_ALLOWED_SOURCES": "a/b"}, "Config 'THUMBSVC_ALLOWED_SOURCES' has value 'a/b'."),
    ],
)
def test_bad_configuration_names_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(environ)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_settings_never_show_a_key() -> None:
    settings = Settings.from_env({"THUMBSVC_KEY": "my-super-secret,old-secret"})
    text = f"{settings!r} {settings!s}"
    assert "my-super-secret" not in text and "old-secret" not in text and settings.dev_key not in text
    assert f"keys=<2 keys: {key_fingerprint('my-super-secret')}, {key_fingerprint('old-secret')}>" in text
    assert key_fingerprint("my-super-secret") == hashlib.sha256(b"my-super-secret").hexdigest()[:8]
    assert describe_keys(("a",)) == f"1 key: {key_fingerprint('a')}"


@pytest.mark.parametrize("value", ["", "   ", ",", " , , "])
def test_a_key_variable_without_a_key_is_refused_without_echoing_it(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"THUMBSVC_KEY": value})
    assert str(info.value) == "THUMBSVC_KEY is set but holds no key."


def test_every_setting_has_bounds_or_a_checked_text() -> None:
    # A variable without bounds takes any number: "huge" and "negative" must mean something to each one.
    for cls in (Settings, ServerSettings, ClientSettings):
        for f in setting_fields(cls):
            if str(f.type) in ("int", "float"):
                assert f.metadata["range"] is not None, f.name


@pytest.mark.parametrize(
    ("environ", "flags", "message"),
    [
        ({"THUMBSVC_PORT": "99999"}, {}, "Config 'THUMBSVC_PORT' has value '99999'. Must be from 1 to 65,535."),
        ({"THUMBSVC_PORT": "80"}, {"port": "0"}, "Option '--port' has value '0'. Must be from 1 to 65,535."),
        ({}, {"workers": "0"}, "Option '--workers' has value '0'. Must be from 1 to 512."),
        ({}, {"log_level": "loud"}, "Option '--log-level' has value 'loud'. Must be one of critical, error,"),
        ({"THUMBSVC_HEADER_TIMEOUT": "0"}, {}, "Config 'THUMBSVC_HEADER_TIMEOUT' has value '0'. Must be above 0"),
        (
            {"THUMBSVC_KEEPALIVE_TIMEOUT": "inf"},
            {},
            "Config 'THUMBSVC_KEEPALIVE_TIMEOUT' has value 'inf'. Not a finite",
        ),
        ({"THUMBSVC_MAX_URL_LENGTH": "100"}, {}, "Config 'THUMBSVC_MAX_URL_LENGTH' has value '100'. Must be from 256"),
        ({"THUMBSVC_MAX_CONNECTIONS": "0"}, {}, "Config 'THUMBSVC_MAX_CONNECTIONS' has value '0'. Must be from 1"),
    ],
)
def test_server_settings_name_the_flag_or_variable(
    environ: dict[str, str], flags: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        ServerSettings.from_env(environ, flags)
    assert str(info.value).startswith(message)


def test_a_flag_wins_over_its_variable() -> None:
    settings = ServerSettings.from_env(
        {"THUMBSVC_PORT": "8080", "THUMBSVC_HOST": "::1"}, {"port": "9090", "host": None}
    )
    assert (settings.port, settings.host) == (9090, "::1")


def test_the_connection_cap_stays_below_the_file_descriptor_limit() -> None:
    assert ServerSettings().max_connections == min(MAX_CONNECTIONS_DEFAULT, fd_room())
    assert fd_room() == fd_limit() - FD_RESERVE
    with pytest.raises(ConfigError, match=r"THUMBSVC_MAX_CONNECTIONS.*RLIMIT_NOFILE"):
        ServerSettings(max_connections=fd_room() + 1)


def test_the_connection_cap_is_sized_from_a_lowered_limit() -> None:
    # In a child with RLIMIT_NOFILE lowered, as a container or a systemd unit may run it.
    code = "from thumbsvc.config import ServerSettings; print(ServerSettings().max_connections)"

    def lower(limit: int) -> Callable[[], None]:
        return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, preexec_fn=lower(400))
    assert done.stdout.strip() == str(400 - FD_RESERVE)
    done = subprocess.run(
        [sys.executable, "-m", "thumbsvc.cli", "check-config"], capture_output=True, text=True, preexec_fn=lower(64)
    )
    assert done.returncode == 2
    assert done.stderr.startswith("thumbsvc: The file-descriptor limit (RLIMIT_NOFILE 64) leaves no room")


def test_client_settings() -> None:
    assert ClientSettings.from_env({}).base_url == "http://127.0.0.1:8000"
    assert ClientSettings.from_env({"THUMBSVC_BASE_URL": "https://img.example.com/t"}).base_url.endswith("/t")
    with pytest.raises(ConfigError, match="Option '--base-url'"):
        ClientSettings.from_env({}, {"base_url": "img.example.com"})


def test_a_local_source_without_a_media_root_names_the_setting(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory(media_root=None)
    url = URLSigner(key=TEST_KEY).path("photos/landscape.jpg", width=10)
    with TestClient(create_app(settings)) as client:
        response = client.get(url)
    assert response.status_code == 403
    assert response.text == "Local sources are not enabled (set THUMBSVC_MEDIA_ROOT)\n"
