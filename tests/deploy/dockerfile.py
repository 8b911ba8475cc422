"""Read the Dockerfile and .dockerignore the way ``docker build`` does, so tests can run their commands.

Only the subset this project's Dockerfile uses: line continuations, comments, ``ARG``/``FROM`` stages,
``ENV k=v ...``, ``RUN``/``COPY``/``USER``/``EXPOSE``/``WORKDIR``, and exec-form ``ENTRYPOINT``/``CMD``/
``HEALTHCHECK CMD``. Anything it cannot read raises, so a Dockerfile change cannot silently escape the tests.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import REPO

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


@dataclass
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def one(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert len(found) == 1, f"expected one {keyword} in stage {self.name}, found {len(found)}"
        return found[0]

    @property
    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for token in shlex.split(instruction.args):
                name, sep, value = token.partition("=")
                assert sep, f"ENV in the legacy 'ENV name value' form: {instruction.args!r}"
                values[name] = value
        return values

    def exec_form(self, keyword: str) -> list[str]:
        args = self.one(keyword).args
        value = json.loads(args)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), f"{keyword} is not exec form"
        return value


@dataclass
class Dockerfile:
    args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    @property
    def start_command(self) -> list[str]:
        """ENTRYPOINT + CMD of the final stage, as the container runs them."""
        return self.final.exec_form("ENTRYPOINT") + self.final.exec_form("CMD")

    @property
    def healthcheck(self) -> tuple[dict[str, str], list[str]]:
        """The HEALTHCHECK options (``--interval`` ...) and its exec-form command."""
        args = self.final.one("HEALTHCHECK").args
        options: dict[str, str] = {}
        while args.startswith("--"):
            option, _, args = args.partition(" ")
            name, _, value = option[2:].partition("=")
            options[name] = value
            args = args.lstrip()
        keyword, _, command = args.partition(" ")
        assert keyword == "CMD", f"HEALTHCHECK without CMD: {args!r}"
        value = json.loads(command)
        assert isinstance(value, list), "HEALTHCHECK CMD is not exec form"
        return options, value


def logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1].rstrip() + " "
            continue
        current += stripped
        lines.append(current)
        current = ""
    assert not current, "Dockerfile ends inside a continued line"
    return lines


def parse_dockerfile(path: Path = DOCKERFILE) -> Dockerfile:
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical_lines(path.read_text()):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif keyword == "FROM":
            match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.IGNORECASE)
            assert match, f"unreadable FROM: {rest!r}"
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], match.group(1))
            stages.append(Stage(base=base, name=match.group(2)))
        else:
            assert stages, f"{keyword} before FROM"
            assert keyword in KNOWN, f"instruction the tests do not read: {keyword}"
            stages[-1].instructions.append(Instruction(keyword, rest))
    return Dockerfile(args=args, stages=stages)


KNOWN = {"ARG", "ENV", "RUN", "COPY", "WORKDIR", "USER", "EXPOSE", "HEALTHCHECK", "ENTRYPOINT", "CMD", "LABEL"}


def ignore_patterns(path: Path = DOCKERIGNORE) -> list[tuple[bool, str]]:
    """(is_exception, pattern) pairs, in file order."""
    patterns = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        patterns.append((negate, pattern.strip("/")))
    return patterns


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Go's filepath.Match syntax as Docker reads it: ``*``, ``?``, ``[...]`` within one path segment, ``**`` across."""
    out: list[str] = []
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
            continue
        if pattern.startswith("**", index):
            out.append(".*")
            index += 2
            continue
        char = pattern[index]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.index("]", index)
            out.append(pattern[index : end + 1].replace("[!", "[^"))
            index = end
        else:
            out.append(re.escape(char))
        index += 1
    return re.compile("".join(out) + r"\Z")


def _matches(pattern: str, relpath: str) -> bool:
    """Docker's rule: a pattern matches a path or any of its parent directories."""
    regex = _glob_regex(pattern)
    parts = relpath.split("/")
    return any(regex.match("/".join(parts[: n + 1])) for n in range(len(parts)))


def in_build_context(relpath: str, patterns: list[tuple[bool, str]] | None = None) -> bool:
    """Whether ``docker build`` sends this repository file to the daemon (the last matching pattern decides)."""
    included = True
    for negate, pattern in patterns if patterns is not None else ignore_patterns():
        if _matches(pattern, relpath):
            included = negate
    return included
