"""A small Dockerfile and .dockerignore reader for the static checks of the images.

Nothing here can build an image (this machine has no Docker engine); it reads what the
Dockerfiles say: instructions with continuation lines joined and comments dropped,
build stages split at ``FROM`` with global ``ARG`` defaults substituted, and which
paths a ``.dockerignore`` keeps in the build context.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

_VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")
#: A tag naming an exact release: three numeric components, optionally a variant suffix.
_EXACT_TAG = re.compile(r"^v?\d+\.\d+\.\d+([-.][A-Za-z0-9.-]+)?$")
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str
    line: int

    def exec_form(self) -> list[str]:
        """The JSON (exec) form of ENTRYPOINT/CMD; a shell form is an error here."""
        parsed = json.loads(self.value)
        assert isinstance(parsed, list), f"line {self.line}: {self.keyword} is not a JSON list"
        return [str(item) for item in parsed]

    def commands(self) -> list[str]:
        """The commands of a RUN, split at ``&&``."""
        return [part.strip() for part in self.value.split("&&")]


@dataclass
class Stage:
    base: str
    name: str | None
    line: int
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


@dataclass
class Dockerfile:
    path: Path
    args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage_names(self) -> set[str]:
        return {s.name for s in self.stages if s.name}


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Instructions as (first line number, text), continuations joined, comments dropped."""
    lines: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # comment lines are dropped even inside a continuation, as Docker does
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        lines.append((start, " ".join(p for p in pending if p)))
        pending = []
    assert not pending, f"a continuation at line {start} never ends"
    return lines


def _substitute(value: str, args: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in args, f"{value}: ${name} has no default ARG before the first FROM"
        return args[name]

    return _VAR.sub(replace, value)


def parse(path: Path) -> Dockerfile:
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line, text in _logical_lines(path.read_text()):
        keyword, _, value = text.partition(" ")
        keyword, value = keyword.upper(), value.strip()
        if keyword == "FROM":
            words = [w for w in value.split() if not w.startswith("--platform")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=_substitute(words[0], args), name=name, line=line))
        elif not stages:
            assert keyword == "ARG", f"{path}:{line}: only ARG may come before the first FROM"
            arg, _, default = value.partition("=")
            args[arg] = default
        else:
            stages[-1].instructions.append(Instruction(keyword, value, line))
    assert stages, f"{path} has no FROM"
    return Dockerfile(path=path, args=args, stages=stages)


def pinned(image: str) -> bool:
    """True for ``name:<exact version>`` or ``name[:tag]@sha256:<digest>``."""
    if _DIGEST.search(image):
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and bool(_EXACT_TAG.match(tag))


def copy_sources(instruction: Instruction) -> list[str]:
    """The sources of a COPY from the build context (not of a COPY --from=<stage>)."""
    words = [w for w in instruction.value.split() if not w.startswith("--chown")]
    assert not any(w.startswith("--from") for w in words), "not a copy from the context"
    return words[:-1]


class DockerIgnore:
    """Which context paths a .dockerignore keeps: the last matching pattern wins, and a
    pattern matching a parent directory matches everything under it."""

    def __init__(self, path: Path) -> None:
        self.rules: list[tuple[bool, str]] = []
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            keep = line.startswith("!")
            self.rules.append((keep, line.lstrip("!").rstrip("/")))

    def kept(self, relative: str) -> bool:
        parts = relative.strip("/").split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        kept = True
        for keep, pattern in self.rules:
            if any(fnmatch.fnmatchcase(p, pattern) for p in prefixes):
                kept = keep
        return kept
