"""The container image's install, reproduced from the Dockerfile in a virtualenv: tests start what it installs."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.dockerfile import Dockerfile, in_build_context, parse_dockerfile
from tests.helpers import REPO

# The build stage's one RUN line that is not run verbatim: the test makes the venv itself and lets it see
# the test environment's packages (never the base interpreter's), so the install below needs no download.
VENV_RUN = 'python -m venv "$VIRTUAL_ENV"'


def make_image_venv(venv: Path) -> None:
    """Make a virtualenv that sees this test environment's packages and nothing of the machine's base Python.

    The image builds with pip's isolated build (fresh setuptools from the index); offline, the build runs in
    the venv itself, so it must find the setuptools the ``test`` extra installed, not one left on the machine:
    the venv's own bundled setuptools (too old to build wheels) is removed and the test environment's
    site-packages is appended to its path.
    """
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "uninstall", "--yes", "--quiet", "setuptools"],
        check=True,
        timeout=120,
        capture_output=True,
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    ours = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    # Appended after the venv's own site-packages, so what the image installs comes first.
    (Path(site) / "thumbsvc-test-environment.pth").write_text("".join(f"{path}\n" for path in ours))


@dataclass(frozen=True)
class ImageInstall:
    """thumbsvc as the image installs it: a virtualenv and the runtime stage's environment, mapped onto it."""

    venv: Path
    env: dict[str, str]
    start_command: list[str]

    def executable(self, name: str) -> str:
        found = shutil.which(name, path=self.env["PATH"])
        assert found, f"{name} is not on the image's PATH"
        return found


@pytest.fixture(scope="session")
def dockerfile() -> Dockerfile:
    return parse_dockerfile()


def copy_into_workdir(source: str, dest: Path) -> None:
    """``COPY source dest`` from the build context (the repository filtered by .dockerignore)."""
    origin = REPO / source
    assert in_build_context(source), f"COPY {source}: excluded by .dockerignore"
    assert origin.exists(), f"COPY {source}: not in the repository"
    if origin.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(origin, dest / origin.name if dest.is_dir() else dest)
        return
    for path in sorted(origin.rglob("*")):
        relative = path.relative_to(REPO).as_posix()
        if path.is_file() and in_build_context(relative):
            target = dest / path.relative_to(origin)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)


@pytest.fixture(scope="session")
def image_install(dockerfile: Dockerfile, tmp_path_factory: pytest.TempPathFactory) -> ImageInstall:
    """Run the Dockerfile's build stage (COPY and the pip install RUN, verbatim) into a local virtualenv."""
    root = tmp_path_factory.mktemp("image")
    build = dockerfile.stage("build")
    stage_env = build.env
    container_venv = stage_env["VIRTUAL_ENV"]
    venv = root / "venv"
    make_image_venv(venv)

    workdir_in_image = build.one("WORKDIR").args
    workdir = root / "src"
    workdir.mkdir()
    for copy in build.all("COPY"):
        *sources, dest = shlex.split(copy.args)
        assert not any(s.startswith("--") for s in sources), f"COPY flags the test does not read: {copy.args}"
        target = workdir / Path(dest) if not dest.startswith("/") else root / dest.lstrip("/")
        if dest.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
        for source in sources:
            copy_into_workdir(source, target)

    runs = [r.args for r in build.all("RUN")]
    assert runs[0] == VENV_RUN, f"the build stage should start by making its venv: {runs[0]!r}"
    env = {
        **os.environ,
        **stage_env,
        "VIRTUAL_ENV": str(venv),
        # Offline: dependencies and setuptools come from the test environment (make_image_venv).
        "PIP_NO_INDEX": "1",
        "PIP_NO_BUILD_ISOLATION": "0",  # pip reads this one inverted: "0" turns build isolation off
    }
    for command in runs[1:]:
        result = subprocess.run(
            ["sh", "-c", command], cwd=workdir, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert result.returncode == 0, (
            f"RUN {command} (WORKDIR {workdir_in_image}) failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )

    runtime_env = dict(dockerfile.final.env)
    assert runtime_env.get("VIRTUAL_ENV") == container_venv
    runtime_env["VIRTUAL_ENV"] = str(venv)
    runtime_env["PATH"] = runtime_env["PATH"].replace(container_venv, str(venv)).replace("$PATH", os.environ["PATH"])
    return ImageInstall(venv=venv, env=runtime_env, start_command=dockerfile.start_command)
