"""The container image's install, reproduced from the Dockerfile in a virtualenv: tests start what it installs."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.dockerfile import Dockerfile, in_build_context, parse_dockerfile
from tests.helpers import REPO

# The build stage's one RUN line that is not run verbatim: the test makes the venv with access to the
# packages CI already installed, so the install below needs no download.
VENV_RUN = 'python -m venv "$VIRTUAL_ENV"'


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
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)

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
        # Offline: build with the setuptools already installed, take dependencies from the system site.
        "PIP_NO_INDEX": "1",
        "PIP_NO_BUILD_ISOLATION": "0",
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
