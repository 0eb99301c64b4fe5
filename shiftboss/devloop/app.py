"""The author's app: ``--app module:attribute`` checked, then imported once in a child
Python from the project directory (as the pool's workers will import it) to list its
skills, so that a typo or an import error is reported before any cluster starts."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from worker_runtime.protocol import SkillSpec

_IDENTIFIERS = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_APP = re.compile(rf"^{_IDENTIFIERS}:{_IDENTIFIERS}$")
#: Importing an app may be slow (heavy libraries), never this slow.
IMPORT_TIMEOUT = 120.0
_SKILLS = TypeAdapter(list[SkillSpec])


class AppError(Exception):
    """The app cannot be imported or serves nothing; the message says why and the fix."""


def app_spec(text: str) -> str:
    """``module:attribute`` (dotted names allowed on both sides); an argparse type."""
    text = text.strip()
    if not _APP.match(text):
        raise argparse.ArgumentTypeError(
            f"expected module:attribute (the module holding your worker_runtime.Worker and "
            f"its name, e.g. app:worker for `worker = Worker()` in app.py), got {text!r}"
        )
    return text


def load_skills(app: str, project: Path, python: str = sys.executable) -> list[SkillSpec]:
    """Import ``app`` from ``project`` in a child Python and return its skills."""
    module = app.partition(":")[0]
    argv = [python, "-m", "worker_runtime.cli", "skills", "--app", app]
    try:
        result = subprocess.run(
            argv, cwd=project, capture_output=True, text=True, timeout=IMPORT_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        raise AppError(
            f"--app {app}: importing module {module!r} took more than {IMPORT_TIMEOUT:.0f}s; "
            "move slow start-up work out of import time"
        ) from None
    if result.returncode:
        detail = _last_lines(result.stderr)
        raise AppError(
            f"--app {app}: cannot load it from {project}:\n{detail}\n"
            f"fix: run `shiftboss dev` in the directory that holds {module.replace('.', '/')}.py "
            f"(or its package), and check `{python} -c 'import {module}'` works there"
        )
    try:
        skills = _SKILLS.validate_json(result.stdout)
    except ValidationError as exc:  # an app printing to stdout at import time
        raise AppError(f"--app {app}: could not read its skills: {exc}") from None
    if not skills:
        raise AppError(
            f"--app {app}: the worker has no skills; decorate a function with "
            "@worker.skill() so that jobs have something to run"
        )
    return skills


def _last_lines(text: str, count: int = 15) -> str:
    lines = text.strip().splitlines()[-count:]
    return "\n".join(f"  {line}" for line in lines) or "  (no output)"


def example_params(skill: SkillSpec) -> dict[str, object]:
    """Values for the required parameters of ``skill`` that its input schema accepts
    where that is simple to tell (an example, a bound, a plain type), for the printed
    example commands; other parameters are left for the author to fill in."""
    schema = skill.input_schema
    properties = schema.get("properties", {})
    example: dict[str, object] = {}
    for name in schema.get("required", []):
        prop = properties.get(name, {})
        value = _example_value(prop if isinstance(prop, dict) else {})
        example[name] = value if value is not None else f"<{name}>"
    return example


def _example_value(prop: dict[str, object]) -> object:
    examples = prop.get("examples")
    if isinstance(examples, list) and examples:
        return examples[0]
    kind = prop.get("type")
    if kind in ("integer", "number"):
        low = prop.get("minimum")
        above = prop.get("exclusiveMinimum")
        value = low if isinstance(low, int | float) else None
        if value is None and isinstance(above, int | float):
            value = above + 1
        number = value if value is not None else 1
        return int(number) if kind == "integer" else float(number)
    if kind == "string":
        return "example"
    if kind == "boolean":
        return True
    return None
