"""What ``submit`` sends, from its flags and an optional manifest (``-f``): the pool, the
skill, the params and the client's ``JobOptions``. Pure, so that every rule is unit-tested
and bad input is refused before the cluster is contacted."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import yaml
from pydantic import ValidationError

from shiftboss.api.common import API_GROUP_VERSION
from shiftboss.api.job import Job
from shiftboss.client import JobOptions
from shiftboss.commands.common import UsageError

#: Spec fields a manifest may set: what ``submit`` passes on as ``JobOptions``.
_SPEC_OPTIONS = (
    "priority",
    "timeout_seconds",
    "active_deadline_seconds",
    "retry",
    "ttl_seconds_after_finished",
    "idempotency_key",
)
_SPEC_FIELDS = frozenset({"pool", "skill", "params", *_SPEC_OPTIONS})


def param(text: str) -> tuple[str, Any]:
    """``KEY=VALUE``; the value is JSON when it parses as JSON (``a=2`` is the number 2,
    ``tags=["x"]`` a list), else the string as given (``name=bob``). An argparse type."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key.strip(), value


def params_json(text: str) -> dict[str, Any]:
    """A JSON object of params. An argparse type."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--params-json is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"--params-json must be a JSON object, got {type(value).__name__}"
        )
    return value


def manifest(path: str) -> Job:
    """The Job in a YAML or JSON file (``-`` reads stdin). An argparse type."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
        doc = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as exc:
        raise argparse.ArgumentTypeError(f"cannot read {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise argparse.ArgumentTypeError(f"{path}: expected one Job object")
    if (doc.get("apiVersion"), doc.get("kind")) != (API_GROUP_VERSION, "Job"):
        raise argparse.ArgumentTypeError(
            f"{path}: expected apiVersion {API_GROUP_VERSION} and kind Job, got "
            f"{doc.get('apiVersion')} {doc.get('kind')}"
        )
    unknown = set(doc.get("spec") or {}) - {_camel(f) for f in _SPEC_FIELDS}
    if unknown:
        raise argparse.ArgumentTypeError(
            f"{path}: submit does not send spec.{', spec.'.join(sorted(unknown))}; "
            "create such a Job with kubectl apply -f"
        )
    try:
        return Job.model_validate(doc)
    except ValidationError as exc:
        errors = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise argparse.ArgumentTypeError(f"{path}: invalid Job: {errors}") from None


def _camel(field: str) -> str:
    head, *rest = field.split("_")
    return head + "".join(word.title() for word in rest)


@dataclass(frozen=True)
class Submission:
    """What ``AsyncClient.submit`` is called with, and the namespace to submit in."""

    pool: str
    skill: str
    params: dict[str, Any]
    options: JobOptions
    namespace: str | None


def submission(args: argparse.Namespace) -> Submission:
    """``submit``'s flags over the manifest's values (``-f``), which the flags override:
    params are merged, ``--params-json`` first, then each ``--param``."""
    job: Job | None = args.filename
    spec = job.spec if job else None
    pool = args.pool or (spec.pool if spec else None)
    skill = args.skill or (spec.skill if spec else None)
    if not pool or not skill:
        raise UsageError("give POOL and SKILL, or a Job manifest with -f")
    params = {**(spec.params if spec else {}), **(args.params_json or {}), **dict(args.param)}
    options: dict[str, Any] = {}
    if job is not None and spec is not None:
        options.update({f: getattr(spec, f) for f in _SPEC_OPTIONS if f in spec.model_fields_set})
        metadata = job.metadata
        for key, option in (("labels", "labels"), ("annotations", "annotations")):
            if metadata.get(key):
                options[option] = metadata[key]
        if metadata.get("name"):
            options["name"] = metadata["name"]
        elif metadata.get("generateName"):
            options["generate_name"] = metadata["generateName"]
    flags = {
        "priority": args.priority,
        "timeout_seconds": args.timeout_seconds,
        "name": args.name,
        "generate_name": args.generate_name,
    }
    if args.name or args.generate_name:  # a flag's name wins over the manifest's
        options.pop("name", None)
        options.pop("generate_name", None)
    options.update({k: v for k, v in flags.items() if v is not None})
    return Submission(
        pool=pool,
        skill=skill,
        params=params,
        options=cast(JobOptions, options),
        namespace=_namespace(args.namespace, job),
    )


def _namespace(flag: str | None, job: Job | None) -> str | None:
    """``-n``, else the manifest's namespace; the two must agree, as for kubectl."""
    declared = job.namespace if job else None
    if flag and declared and flag != declared:
        raise UsageError(
            f"the manifest's namespace {declared} does not match -n {flag}: drop one of them"
        )
    return flag or declared
