"""README.md stays true: every setting is documented, the layout names every module, CI runs its commands."""

from __future__ import annotations

import re
import subprocess

from tests.helpers import REPO
from thumbsvc.config import OTHER_NAMES, PREFIX, known_names

README = (REPO / "README.md").read_text(encoding="utf-8")
CI = REPO / ".ci" / "run"


def test_every_setting_is_in_a_settings_table() -> None:
    documented = set(re.findall(r"^\| `(THUMBSVC_[A-Z0-9_]+)` \|", README, flags=re.MULTILINE))
    expected = known_names() - {PREFIX + name for name in OTHER_NAMES}
    assert documented == expected, (sorted(expected - documented), sorted(documented - expected))


def readme_command(number: int) -> str:
    """The command .ci/run reads from README.md (its own function, run by bash)."""
    script = CI.read_text(encoding="utf-8")
    function = re.search(r"^readme_command\(\) \{\n.*?^\}\n", script, flags=re.MULTILINE | re.DOTALL)
    assert function, ".ci/run has no readme_command function"
    done = subprocess.run(
        ["bash", "-c", f"{function.group(0)}\nreadme_command {number}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_ci_runs_the_readme_commands_as_written_in_a_venv_of_its_own() -> None:
    assert readme_command(1) == 'pip install ".[playground]" && thumbsvc serve'
    assert readme_command(2) == 'pip install -e ".[test]" && python -m pytest'
    script = CI.read_text(encoding="utf-8")
    assert 'python3 -m venv "$scratch/test-venv"' in script
    assert 'bash -euo pipefail -c "$test_command"' in script
    assert 'bash -euo pipefail -c "$serve_command"' in script
    # Nothing installed outside the venvs it made: no pip on the machine's own interpreter.
    assert not re.search(r"^\s*(python3? -m )?pip ", script, flags=re.MULTILINE)


def test_the_layout_names_every_module() -> None:
    layout = README[README.index("## Layout") :]
    named = set(re.findall(r"`([a-z_0-9]+/?)`", layout))
    package = REPO / "thumbsvc"
    modules = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    packages = {f"{p.name}/" for p in package.iterdir() if (p / "__init__.py").is_file()}
    assert modules | packages <= named, sorted((modules | packages) - named)
    for sub in packages:
        inner = {p.stem for p in (package / sub).glob("*.py") if p.stem != "__init__"}
        inner |= {f"{p.name}/" for p in (package / sub).iterdir() if (p / "__init__.py").is_file()}
        assert inner <= named, (sub, sorted(inner - named))
