"""The command line: what it prints, and that every mistake is one line naming what to fix, exit status 2."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import Field
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.helpers import TEST_KEY, decode
from tests.live import free_port
from thumbsvc.app import create_app
from thumbsvc.cli import SERVE_FLAGS, build_parser
from thumbsvc.config import (
    PREFIX,
    SAMPLES_DIR,
    ClientSettings,
    ServerSettings,
    Settings,
    env_name,
    flag_name,
    known_names,
    setting_fields,
)


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("THUMBSVC_")}
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "thumbsvc.cli", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_url_command_signs_urls_the_server_accepts(media_root: Path) -> None:
    result = run_cli(
        "url",
        "photos/landscape.jpg",
        "--width",
        "120",
        "--height",
        "120",
        "--fit",
        "cover",
        "--gravity",
        "0.2,0.8",
        "--format",
        "webp",
        "--base-url",
        "http://testserver",
        THUMBSVC_KEY=TEST_KEY,
    )
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip()
    assert "/120x120/fit:cover/g:0.2:0.8/f:webp/photos/landscape.jpg" in url
    with TestClient(create_app(Settings(keys=(TEST_KEY,), media_root=str(media_root)))) as client:
        response = client.get(url)
    assert response.status_code == 200
    assert decode(response.content).size == (120, 120)


def test_url_command_takes_jpg_and_writes_the_canonical_jpeg() -> None:
    for spelling in ("jpg", "JPG", "jpeg"):
        result = run_cli("url", "a.png", "--width", "10", "--format", spelling, THUMBSVC_KEY=TEST_KEY)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().endswith("/10x/f:jpeg/a.png")


def test_url_command_refuses_what_a_default_server_refuses_unless_told_its_limit() -> None:
    refused = run_cli("url", "a.jpg", "--width", "5000", THUMBSVC_KEY=TEST_KEY)
    assert refused.returncode == 2
    assert "width 5000" in refused.stderr and "4096" in refused.stderr and "--max-size" in refused.stderr
    assert run_cli("url", "a.jpg", "--width", "2100", "--dpr", "2", THUMBSVC_KEY=TEST_KEY).returncode == 2
    allowed = run_cli("url", "a.jpg", "--width", "5000", "--max-size", "8000", THUMBSVC_KEY=TEST_KEY)
    assert allowed.returncode == 0 and allowed.stdout.strip().endswith("/5000x/a.jpg")
    # The service's own variable, when the shell has it, is the limit.
    from_env = run_cli("url", "a.jpg", "--width", "5000", THUMBSVC_KEY=TEST_KEY, THUMBSVC_MAX_OUTPUT_PX="6000")
    assert from_env.returncode == 0, from_env.stderr


def test_url_command_ignores_the_settings_it_does_not_use() -> None:
    result = run_cli("url", "a.jpg", "--width", "10", THUMBSVC_KEY=TEST_KEY, THUMBSVC_PORT="abc")
    assert result.returncode == 0, result.stderr


def test_url_command_needs_a_key() -> None:
    result = run_cli("url", "a.jpg", "--width", "10")
    assert result.returncode == 2
    assert result.stderr.strip() == "thumbsvc: THUMBSVC_KEY is not set: 'thumbsvc url' needs the key to sign with."


def test_invalid_configuration_stops_start_up_with_one_line() -> None:
    result = run_cli("serve", THUMBSVC_KEY="k", THUMBSVC_RENDER_SLOTS="lots")
    assert result.returncode == 2
    assert result.stderr.strip() == "thumbsvc: Config 'THUMBSVC_RENDER_SLOTS' has value 'lots'. Not a valid int."


def test_development_mode_refuses_public_interfaces() -> None:
    result = run_cli("serve", "--host", "0.0.0.0")
    assert result.returncode == 2
    assert "loopback" in result.stderr


@pytest.mark.parametrize("value", ["", " ", ",", " , ,"])
def test_a_key_variable_without_a_key_stops_start_up(value: str) -> None:
    # Not development mode by accident: an empty THUMBSVC_KEY is a deployment mistake (a missing secret).
    for command in (["serve", "--host", "0.0.0.0"], ["check-config"], ["url", "a.jpg", "--width", "1"]):
        result = run_cli(*command, THUMBSVC_KEY=value)
        assert result.returncode == 2, command
        assert result.stderr.strip() == "thumbsvc: THUMBSVC_KEY is set but holds no key.", command


def test_check_config_lists_every_setting_with_its_origin_and_never_a_key(tmp_path: Path) -> None:
    keys = ("my-super-secret", "old-secret")
    result = run_cli(
        "check-config", THUMBSVC_KEY=",".join(keys), THUMBSVC_MEDIA_ROOT=str(tmp_path), THUMBSVC_PORT="8080"
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for key in keys:
        assert key not in out
    fingerprints = [hashlib.sha256(key.encode()).hexdigest()[:8] for key in keys]
    assert out.splitlines()[0] == f"thumbsvc: configuration OK: production mode, 2 keys: {', '.join(fingerprints)}"
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in out.splitlines()[1:]}
    assert set(rows) == known_names() - {PREFIX + "CORPUS"}
    assert rows["THUMBSVC_KEY"] == ["environment", f"2 keys: {', '.join(fingerprints)}"]
    assert rows["THUMBSVC_MEDIA_ROOT"] == ["environment", str(tmp_path)]
    assert rows["THUMBSVC_PORT"] == ["environment", "8080"]
    assert rows["THUMBSVC_QUEUE_TIMEOUT"] == ["default", "2"]
    assert rows["THUMBSVC_RENDER_SLOTS"][0] == "default" and rows["THUMBSVC_RENDER_SLOTS"][1].endswith("(CPU count)")


def test_check_config_says_development_mode_and_its_media_root() -> None:
    result = run_cli("check-config")
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert "development mode" in first and str(SAMPLES_DIR) in first
    assert re.search(
        rf"^THUMBSVC_MEDIA_ROOT +default +{re.escape(str(SAMPLES_DIR))} \(the bundled samples", result.stdout, re.M
    )


def test_port_in_use_is_one_line_before_the_application_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--port", str(port), THUMBSVC_KEY=TEST_KEY)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"thumbsvc: Port {port} on 127.0.0.1 is in use by another process: choose another with --port or THUMBSVC_PORT."
    )
    assert "Application startup complete" not in result.stdout + result.stderr


def test_help_names_every_default_and_variable() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert isinstance(commands, dict)
    serve_options = [a for a in commands["serve"]._actions if a.option_strings and a.dest != "help"]
    assert sorted(a.dest for a in serve_options) == sorted(SERVE_FLAGS)
    for action in serve_options:
        assert action.help and f"(default: {getattr(ServerSettings(), action.dest)}; " in action.help, action.help
        assert f"env: {PREFIX}{env_name(action.dest)})" in action.help
        assert action.option_strings == [flag_name(action.dest)]
    for action in commands["url"]._actions:
        if action.dest != "help":
            assert action.help, action.dest
            assert action.option_strings == [] or "default: " in action.help, action.help
    assert "env: THUMBSVC_BASE_URL" in commands["url"]._option_string_actions["--base-url"].help
    assert "env: THUMBSVC_MAX_OUTPUT_PX" in commands["url"]._option_string_actions["--max-size"].help
    result = run_cli("serve", "--help")
    assert result.returncode == 0 and "THUMBSVC_PORT" in result.stdout


# Every mistake, for every command: (command line, environment, the name the one line must carry).
Case = tuple[tuple[str, ...], dict[str, str], str]


def bad_values(f: Field[Any]) -> list[str]:
    """Given a settings field, return values it must refuse: non-numeric, empty, negative, zero, huge."""
    bounds = f.metadata.get("range")
    kind = str(f.type).removesuffix(" | None")
    if kind == "bool":
        return ["maybe", "", "2"]
    if bounds is None:
        return {
            "keys": ["", " , "],
            "media_root": ["", "/no/such/directory"],
            "allowed_sources": ["a/b", "ftp://example.com/", "*.*"],
            "allow_private_networks": ["10.0.0.0/33", "nonsense"],
            "cache_control": ["", "max-age=60\x01"],
            "host": ["", " "],
            "log_level": ["loud", ""],
            "base_url": ["", "ftp://example.com", "http://example.com/?q"],
            "watermarks": ["logo", "logo=a.png;gravity=middle", "logo=a.png;opacity=2", "Logo=a.png"],
            "s3_endpoint": ["minio:9000", "ftp://example.com", "http://user@example.com"],
            "s3_region": ["Not A Region", "eu_west_1"],
            "thumbor_key": ["", " , "],
            "thumbor_sources": ["ftp", ""],
        }[f.name]
    values = ["abc", "", "-5", "9" * 40, "1e400" if kind == "float" else "12.5"]
    if bounds.above or bounds.low > 0:
        values.append("0")
    values.append(str(int(bounds.high) + 1))
    if kind == "float":
        values += ["inf", "nan", "-inf"]
    return values


def env_cases(*classes: type[Any], every: bool = True) -> list[Case]:
    """The bad values of every variable of ``classes`` (or, not ``every``, the first and last of each)."""
    cases: list[Case] = []
    for cls in classes:
        for f in setting_fields(cls):
            name = PREFIX + env_name(f.name)
            values = bad_values(f) if every else sorted({bad_values(f)[0], bad_values(f)[-1]})
            cases += [((), {name: value}, name) for value in values]
    return [*cases, ((), {"THUMBSVC_MAX_SOURCE_PIXEL": "1"}, "THUMBSVC_MAX_SOURCE_PIXEL")]


def flag_cases() -> list[Case]:
    bad = {
        "port": ["abc", "", "-1", "0", "65536", "99999", "8e3"],
        "workers": ["two", "", "-1", "0", "100000"],
        "limit_max_requests": ["abc", "", "-1", "1" + "0" * 30],
        "log_level": ["loud", ""],
        "host": ["", "192.0.2.1"],  # a documentation address: no interface here has it
    }
    return [((flag_name(name), value), {}, flag_name(name)) for name, values in bad.items() for value in values]


URL_CASES: list[Case] = [
    *[(("--width", v), {}, "width") for v in ("abc", "", "-1", "0", "99999", "5000", "1.5")],
    *[(("--height", v), {}, "height") for v in ("abc", "-1", "0", "99999")],
    *[(("--quality", v), {}, "quality") for v in ("abc", "", "-1", "0", "101")],
    *[(("--dpr", v), {}, "dpr") for v in ("abc", "", "-1", "0", "5", "nan", "inf", "1.234")],
    *[(("--gravity", v), {}, "gravity") for v in ("0.3,abc", "1,2,3", "2,0.5", "-0.1,0", "up", "", "nan,0")],
    *[(("--crop", v), {}, "crop") for v in ("1,2,x", "1,2,3", "", "-1,0,10,10", "0,0,0,10", "9" * 30 + ",0,1,1")],
    *[(("--format", v), {}, "format") for v in ("bmp", "", "jpgg")],
    *[(("--fit", v), {}, "fit") for v in ("squash", "")],
    *[(("--background", v), {}, "background") for v in ("red", "#12", "", "#gggggg")],
    *[(("--max-size", v), {}, "--max-size") for v in ("abc", "", "-1", "0", "99999")],
    *[(("--trim", v), {}, "trim") for v in ("x", "", "-1", "256", "10,red", "10,#12")],
    *[(("--rotate", v), {}, "rotate") for v in ("45", "", "-90", "abc")],
    *[(("--flip", v), {}, "flip") for v in ("x", "")],
    *[(("--blur", v), {}, "blur") for v in ("abc", "", "0", "0.2", "51", "2.55", "nan")],
    *[(("--sharpen", v), {}, "sharpen") for v in ("abc", "-1", "11")],
    *[(("--watermark", v), {}, "watermark") for v in ("Bad Name", "", "x" * 40)],
    *[(("--expires-in", v), {}, "expires-in") for v in ("abc", "", "0", "-5", "1.5")],
    *[(("--base-url", v), {}, "--base-url") for v in ("", "ftp://example.com", "http://x/ y")],
    *[((), {"THUMBSVC_MAX_OUTPUT_PX": v}, "THUMBSVC_MAX_OUTPUT_PX") for v in ("abc", "", "0", "-1", "99999")],
    *[((), {"THUMBSVC_BASE_URL": v}, "THUMBSVC_BASE_URL") for v in ("", "example.com", "http://a/?q")],
    *[((), {"THUMBSVC_KEY": v}, "THUMBSVC_KEY") for v in ("", " ", ",,")],
]


def test_url_signs_the_filters_and_an_expiry() -> None:
    result = run_cli(
        "url",
        "photos/cat.jpg",
        "--width",
        "300",
        "--trim",
        "10,#ffffff",
        "--rotate",
        "90",
        "--flip",
        "h",
        "--grayscale",
        "--blur",
        "2.5",
        "--sharpen",
        "1",
        "--watermark",
        "logo",
        "--expires-in",
        "3600",
        THUMBSVC_KEY=TEST_KEY,
    )
    assert result.returncode == 0, result.stderr
    path = result.stdout.strip()
    assert "/300x/trim:10:ffffff/rot:90/flip:h/gray:1/blur:2.5/sharp:1/wm:logo/exp:" in path
    expires = int(path.split("/exp:")[1].split("/")[0])
    assert 3595 <= expires - time.time() <= 3605


TABLE: dict[str, list[Case]] = {
    "serve": [*env_cases(Settings, ServerSettings), *flag_cases()],
    # The same validation as serve's (every variable, plus the client's): two values each keep the run short.
    "check-config": env_cases(Settings, ServerSettings, ClientSettings, every=False),
    "url": URL_CASES,
}


def run_case(command: str, case: Case, port: int) -> str | None:
    """Run one mistake; return what is wrong with the answer, or None when it is one line naming the fix."""
    args, env, name = case
    environ = {"THUMBSVC_KEY": TEST_KEY, "THUMBSVC_PORT": str(port), **env}  # a key: production's checks apply
    if command == "url":
        argv = ["url", "photos/cat.jpg", *(["--width", "300"] if "--width" not in args else []), *args]
        environ.pop("THUMBSVC_PORT")
    else:
        argv = [command, *args]
    try:
        result = run_cli(*argv, **environ)
    except subprocess.TimeoutExpired:
        return f"{argv} {env}: did not stop (it started?)"
    lines = result.stderr.splitlines()
    if result.returncode != 2 or len(lines) != 1 or name not in lines[0] or "Traceback" in result.stderr:
        return f"{argv} {env}: exit {result.returncode}, stderr {result.stderr!r}"
    return None


@pytest.mark.parametrize("command", sorted(TABLE))
def test_every_mistake_is_one_line_naming_what_to_fix(command: str) -> None:
    cases = TABLE[command]
    port = free_port()  # if a mistake went unnoticed, serve would start here, and the case times out
    with ThreadPoolExecutor(max_workers=4) as pool:
        problems = [p for p in pool.map(lambda case: run_case(command, case, port), cases) if p]
    assert not problems, "\n".join(problems)
    assert len(cases) >= 30
