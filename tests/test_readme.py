"""README.md stays true: every setting is documented, and the documented commands exist."""

from __future__ import annotations

import re
from dataclasses import fields

from tests.helpers import REPO
from thumbsvc.config import PREFIX, Settings, env_name

README = (REPO / "README.md").read_text(encoding="utf-8")
CI = (REPO / ".ci" / "run").read_text(encoding="utf-8")


def test_every_setting_is_in_the_settings_table() -> None:
    documented = set(re.findall(r"^\| `(THUMBSVC_[A-Z0-9_]+)` \|", README, flags=re.MULTILINE))
    expected = {PREFIX + env_name(f.name) for f in fields(Settings) if f.name != "dev_key"}
    assert expected <= documented, sorted(expected - documented)


def test_ci_runs_the_readme_test_command() -> None:
    command = "python -m pytest"
    assert f'pip install -e ".[test]" && {command}' in README
    assert re.search(rf"^{re.escape(command)}$", CI, flags=re.MULTILINE)
    assert 'pip install -q -e ".[test]"' in CI
