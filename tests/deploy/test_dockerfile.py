"""The Dockerfile: its install command, start command and health check are run here, not just read.

No container engine runs in CI, so the image is reproduced from the Dockerfile's own instructions: the
build context is the repository filtered by .dockerignore, the build stage's COPY and ``pip install`` run
verbatim into a virtualenv (conftest.py), and the final stage's ENV, ENTRYPOINT + CMD and HEALTHCHECK
start and probe that install. tests/deploy/test_edge_stack.py serves its traffic through the same command.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.deploy.conftest import ImageInstall
from tests.deploy.dockerfile import Dockerfile, in_build_context, parse_dockerfile
from tests.deploy.stack import free_port
from tests.helpers import REPO, TEST_KEY
from thumbsvc.config import Settings

FORBIDDEN_PACKAGES = ("ghostscript", "imagemagick", "librsvg", "libmagick", "gsfonts", "inkscape")


def test_two_stages_on_slim_python_311(dockerfile: Dockerfile) -> None:
    assert [stage.name for stage in dockerfile.stages] == ["build", "runtime"]
    for stage in dockerfile.stages:
        assert stage.base.startswith("python:3.11-slim"), stage.base
    # The runtime stage takes only the built virtualenv: no compilers, no build context.
    copies = dockerfile.final.all("COPY")
    assert [c.args for c in copies] == ["--from=build /opt/thumbsvc /opt/thumbsvc"]
    assert dockerfile.final.all("RUN")[0].args.startswith("groupadd --system")


def test_runs_as_a_non_root_user(dockerfile: Dockerfile) -> None:
    user = dockerfile.final.one("USER").args
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) >= 1000, user  # numeric, so runAsNonRoot can verify it
    assert gid.isdigit() and int(gid) >= 1000, user
    assert f"--uid {uid}" in dockerfile.final.all("RUN")[0].args
    instructions = [i.keyword for i in dockerfile.final.instructions]
    assert instructions.index("USER") < instructions.index("ENTRYPOINT")


def test_no_system_image_libraries(dockerfile: Dockerfile) -> None:
    # Pillow's wheels bundle their codecs; PS/PDF/SVG delegates would only widen the attack surface.
    text = (REPO / "Dockerfile").read_text().lower()
    assert "apt-get" not in text and "apk add" not in text
    for package in FORBIDDEN_PACKAGES:
        assert package not in text


def test_runtime_environment_is_valid_configuration(dockerfile: Dockerfile) -> None:
    env = dockerfile.final.env
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["THUMBSVC_HOST"] == "0.0.0.0"
    assert int(env["THUMBSVC_PORT"]) > 1024  # a non-root user cannot bind below 1024
    assert int(env["THUMBSVC_WORKERS"]) >= 1
    assert int(env["THUMBSVC_LIMIT_MAX_REQUESTS"]) >= 0
    assert dockerfile.final.one("EXPOSE").args == env["THUMBSVC_PORT"]
    # Settings refuses unknown THUMBSVC_* names: the image's variables must all be known.
    thumbsvc_env = {k: v for k, v in env.items() if k.startswith("THUMBSVC_")}
    Settings.from_env({**thumbsvc_env, "THUMBSVC_KEY": TEST_KEY})


def test_start_command_is_the_packaged_serve_command(dockerfile: Dockerfile) -> None:
    import tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert dockerfile.start_command == ["thumbsvc", "serve"]
    assert scripts["thumbsvc"] == "thumbsvc.cli:main"


def test_build_context_holds_the_package_and_nothing_else() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    sent = {path for path in tracked if in_build_context(path)}
    assert "pyproject.toml" in sent
    assert any(path.startswith("thumbsvc/samples/") for path in sent)
    assert "thumbsvc/cli.py" in sent
    for path in sent:
        assert path in ("pyproject.toml", "README.md") or path.startswith("thumbsvc/"), path
    for never in (
        "deploy/thumbsvc.env",
        ".git/config",
        "tests/conftest.py",
        "thumbsvc/__pycache__/cli.cpython-311.pyc",
    ):
        assert not in_build_context(never), never


def test_dockerignore_reading_follows_docker_rules(tmp_path: Path) -> None:
    ignore = tmp_path / ".dockerignore"
    ignore.write_text("*\n!src/\nsrc/**/*.tmp\n!src/keep.tmp\n")
    from tests.deploy.dockerfile import ignore_patterns

    patterns = ignore_patterns(ignore)
    assert in_build_context("src/a/b.py", patterns)
    assert not in_build_context("src/a/b.tmp", patterns)
    assert in_build_context("src/keep.tmp", patterns)
    assert not in_build_context("other/file", patterns)


def test_the_dockerfile_reader_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM python:3.11-slim\nONBUILD RUN true\n")
    with pytest.raises(AssertionError, match="ONBUILD"):
        parse_dockerfile(dockerfile)
    dockerfile.write_text('FROM python:3.11-slim\nENTRYPOINT thumbsvc serve\nCMD ["serve"]\n')
    with pytest.raises(ValueError):
        _ = parse_dockerfile(dockerfile).start_command


def test_install_is_a_plain_install_with_the_bundled_samples(image_install: ImageInstall, tmp_path: Path) -> None:
    result = subprocess.run(
        [str(image_install.venv / "bin" / "python"), "-c", "import thumbsvc; print(thumbsvc.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        env=image_install.env,
        cwd=tmp_path,  # not the repository, whose thumbsvc/ would shadow the installed one
    )
    package = Path(result.stdout.strip()).parent
    # The image's copy, not the repository's editable one.
    assert package.is_relative_to(image_install.venv), package
    assert sorted(p.name for p in (package / "samples").glob("*.jpg"))
    assert (package / "py.typed").is_file()
    assert Path(image_install.executable("thumbsvc")).is_relative_to(image_install.venv)


@pytest.fixture
def served(image_install: ImageInstall, tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """The image's start command with the image's environment (a key set, loopback instead of 0.0.0.0)."""
    port = free_port()
    env = {**image_install.env, "THUMBSVC_KEY": TEST_KEY, "THUMBSVC_HOST": "127.0.0.1", "THUMBSVC_PORT": str(port)}
    argv = [image_install.executable(image_install.start_command[0]), *image_install.start_command[1:]]
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp_path
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("the image's start command did not come up")
        yield port, process
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def test_healthcheck_passes_on_a_live_server_and_fails_without_one(
    dockerfile: Dockerfile, image_install: ImageInstall, served: tuple[int, subprocess.Popen[bytes]]
) -> None:
    options, command = dockerfile.healthcheck
    assert command[0] == "python"  # the slim image has no curl or wget
    assert set(options) >= {"interval", "timeout", "start-period", "retries"}
    port, _process = served

    def probe(port: int) -> int:
        env = {**image_install.env, "THUMBSVC_PORT": str(port)}
        return subprocess.run(
            [image_install.executable(command[0]), *command[1:]], env=env, capture_output=True, timeout=10
        ).returncode

    assert probe(port) == 0
    assert probe(free_port()) != 0


def test_start_command_without_a_key_refuses_to_start(image_install: ImageInstall, tmp_path: Path) -> None:
    # The image listens on 0.0.0.0; development mode (no key) is loopback only, so a forgotten key stops
    # the container at once with a one-line reason instead of serving with a throwaway key.
    env = {k: v for k, v in image_install.env.items() if k != "THUMBSVC_KEY"}
    env["THUMBSVC_PORT"] = str(free_port())
    argv = [image_install.executable(image_install.start_command[0]), *image_install.start_command[1:]]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode != 0
    assert "THUMBSVC_KEY" in result.stderr


def test_start_command_stops_cleanly_on_sigterm(served: tuple[int, subprocess.Popen[bytes]], tmp_path: Path) -> None:
    # docker stop / Kubernetes send SIGTERM: the process shuts down gracefully by itself, well within the
    # grace period. uvicorn re-raises the signal once done, so the status is "terminated by SIGTERM" (143).
    _, process = served
    process.terminate()
    assert process.wait(timeout=20) in (0, -signal.SIGTERM)
    log = (tmp_path / "serve.log").read_text()
    assert "Finished server process" in log, log
