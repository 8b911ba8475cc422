"""README.md and docs/ name only settings the code defines, with the defaults the code has.

Every ``THUMBSVC_*`` name in the documentation must be a variable ``thumbsvc.config`` reads, a
Django setting ``thumbsvc.contrib`` reads, or a variable of a configuration in ``deploy/``. Every
default stated for a variable (in a table with a "default" column, or in prose as "`NAME`,
default X", "`NAME` (default X)", "`NAME` (X s)") must be the code's.
"""

from __future__ import annotations

import re
from dataclasses import MISSING, Field
from typing import Any

import pytest

from tests.helpers import REPO
from thumbsvc.config import (
    FD_RESERVE,
    MAX_CONNECTIONS_DEFAULT,
    PREFIX,
    SETTINGS_CLASSES,
    env_name,
    known_names,
    setting_fields,
)
from thumbsvc.sizing import BUDGET_PER_SLOT, DEFAULT_CEILING

# docs/performance.md is a record of measurements at named commits: the variables it quotes are those
# of the commit measured (some since renamed), so it is left out. docs/django.md's settings table is of
# Django settings (two share a name with a variable: THUMBSVC_KEY, THUMBSVC_BASE_URL), not of variables.
DJANGO_DOC = REPO / "docs" / "django.md"
DOCS = [REPO / "README.md", *sorted(p for p in (REPO / "docs").glob("*.md") if p.name != "performance.md")]
NAME = re.compile(r"(?<![A-Z0-9_])THUMBSVC_[A-Z0-9_]*[A-Z0-9]")
PROSE_DEFAULTS = [
    re.compile(r"`(THUMBSVC_[A-Z0-9_]+)`[^`.;]{0,20}?[,(] ?default:? ([^,;)]+)"),
    re.compile(r"`(THUMBSVC_[A-Z0-9_]+)` \((\d[^)]*)\)"),
]
UNITS = {"KB": 1e3, "MB": 1e6, "GB": 1e9, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
NUMBER = re.compile(r"(\d[\d,_]*(?:\.\d+)?)\s*(KiB|MiB|GiB|KB|MB|GB)?")


def fields_by_env() -> dict[str, Field[Any]]:
    return {PREFIX + env_name(f.name): f for cls in SETTINGS_CLASSES for f in setting_fields(cls)}


def other_names() -> set[str]:
    """Names that are not our variables: Django settings of thumbsvc.contrib, variables of deploy/ configs,
    the benchmark runner's own (``THUMBSVC_BENCH_*``, which ``thumbsvc serve`` never sees)."""
    sources = [
        *(REPO / "thumbsvc" / "contrib").rglob("*.py"),
        *(p for p in (REPO / "deploy").rglob("*") if p.is_file()),
        *(REPO / "bench").rglob("*.py"),
    ]
    return {name for path in sources for name in NAME.findall(path.read_text(encoding="utf-8", errors="replace"))}


def documented_defaults() -> list[tuple[str, str, str]]:
    """(where, variable, the default as written) for every default the documentation states."""
    found: list[tuple[str, str, str]] = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(REPO).as_posix()
        column = None
        for line in text.splitlines() if path != DJANGO_DOC else []:
            if not line.startswith("|"):
                column = None
                continue
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if column is None:
                headers = [cell.lower() for cell in cells]
                column = headers.index("default") if "default" in headers else -1
                continue
            names = [cell[1:-1] for cell in cells if re.fullmatch(r"`THUMBSVC_[A-Z0-9_]+`", cell)]
            if column >= 0 and len(names) == 1 and not set(cells[column]) <= set("-: "):
                found.append((where, names[0], cells[column]))
        for pattern in PROSE_DEFAULTS:
            found += [(where, name, written) for name, written in pattern.findall(text)]
    return found


def matches(f: Field[Any], written: str) -> bool:
    """Whether ``written`` states the default of field ``f``."""
    text = written.replace("`", "")
    shown = f.metadata.get("shown")
    if shown is not None:
        numbers = {int(n) for n in re.findall(r"\d+", text)}
        if f.name == "max_connections":  # "the limit less 256, at most 4096"
            return "RLIMIT_NOFILE" in text and numbers <= {FD_RESERVE, MAX_CONNECTIONS_DEFAULT}
        if f.name == "render_memory_budget":  # "from the memory limit or 100 MB a slot (200 MB for 2)"
            per_slot = BUDGET_PER_SLOT // 1_000_000
            return shown in text and all(n % per_slot == 0 or n < 10 for n in numbers)
        if f.name == "max_render_memory":  # "from the memory limit or 512 MB"
            return shown in text and DEFAULT_CEILING // 1_000_000 in numbers
        return shown in text
    default = f.default if f.default is not MISSING else None
    if default is None or isinstance(default, tuple):
        return "none" in text.lower()
    if isinstance(default, bool):
        return str(default).lower() in text.lower()
    if isinstance(default, str):
        return default in text
    number = NUMBER.search(text)
    if number is None:
        return False
    value = float(number.group(1).replace(",", "").replace("_", "")) * UNITS.get(number.group(2) or "", 1)
    return value == float(default)


def test_every_name_in_the_docs_is_defined() -> None:
    allowed = known_names() | other_names()
    unknown = {
        f"{path.relative_to(REPO)}: {name}"
        for path in DOCS
        for name in NAME.findall(path.read_text(encoding="utf-8"))
        if name not in allowed
    }
    assert not unknown, sorted(unknown)


def test_every_default_in_the_docs_is_the_codes() -> None:
    by_env = fields_by_env()
    stated = documented_defaults()
    wrong = [
        f"{where}: {name} says {written!r}"
        for where, name, written in stated
        if name in by_env and not matches(by_env[name], written)
    ]
    assert not wrong, "\n".join(wrong)
    # The reader must find them: every variable's default is stated in README.md at least.
    readme = {name for where, name, _ in stated if where == "README.md"}
    assert set(by_env) <= readme, sorted(set(by_env) - readme)
    assert len(stated) > 70


@pytest.mark.parametrize(
    ("name", "written", "right"),
    [
        ("THUMBSVC_MAX_SOURCE_PIXELS", "50,000,000", True),
        ("THUMBSVC_MAX_SOURCE_PIXELS", "40,000,000", False),
        ("THUMBSVC_CACHE_BYTES", "64 MB", True),
        ("THUMBSVC_CACHE_BYTES", "64 MiB", False),
        ("THUMBSVC_QUEUE_TIMEOUT", "2 s", True),
        ("THUMBSVC_RENDER_SLOTS", "CPU count", True),
        ("THUMBSVC_RENDER_MEMORY_BUDGET", "100 MB", False),
        ("THUMBSVC_LOG_JSON", "`true`", False),
        ("THUMBSVC_KEY", "(none: development mode)", True),
        ("THUMBSVC_MAX_CONNECTIONS", "from `RLIMIT_NOFILE`", True),
        ("THUMBSVC_MAX_CONNECTIONS", "`RLIMIT_NOFILE` less 128, at most 4096", False),
        ("THUMBSVC_RENDER_MEMORY_BUDGET", "55 MB per render slot (100 MB for 2)", False),
    ],
)
def test_the_checker_tells_right_from_wrong(name: str, written: str, right: bool) -> None:
    assert matches(fields_by_env()[name], written) is right
