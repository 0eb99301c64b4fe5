"""What ``shiftboss dev`` prints once the pool's workers are ready: the lines to paste
in another shell, and example commands naming the pool and the app's skills. Pure."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

import yaml

from shiftboss.api.common import API_GROUP_VERSION
from shiftboss.devloop.app import example_params
from shiftboss.testing.up import exports
from worker_runtime.protocol import SkillSpec

#: The last line printed before the session runs: tools wait for it.
READY_LINE = "Ctrl-C stops everything shiftboss dev started."


@dataclass(frozen=True)
class DevInfo:
    app: str
    project: Path
    pool: str
    namespace: str
    replicas: int
    skills: list[SkillSpec]
    kubeconfig: Path
    bin_dir: Path
    logs: Path
    prog: str = "shiftboss"
    #: Whether the session restarts the workers when the project's Python files change.
    reload: bool = True


def submit_command(info: DevInfo, skill: SkillSpec) -> str:
    """``shiftboss submit POOL SKILL -p k=v ... --wait``, for a shell."""
    words = [*info.prog.split(), "submit", info.pool, skill.name]
    for key, value in example_params(skill).items():
        text = value if isinstance(value, str) else json.dumps(value)
        words += ["-p", f"{key}={text}"]
    words += ["--wait", *_namespace_flag(info)]
    return shlex.join(words)


def job_manifest(info: DevInfo, skill: SkillSpec) -> str:
    """A Job for ``kubectl create -f -`` (create: a generated name runs anew each time)."""
    job = {
        "apiVersion": API_GROUP_VERSION,
        "kind": "Job",
        "metadata": {"generateName": f"{skill.name}-"},
        "spec": {"pool": info.pool, "skill": skill.name, "params": example_params(skill)},
    }
    return yaml.safe_dump(job, sort_keys=False).rstrip()


def _namespace_flag(info: DevInfo) -> list[str]:
    return [] if info.namespace == "default" else ["-n", info.namespace]


def render(info: DevInfo) -> str:
    workers = f"{info.replicas} worker{'s' if info.replicas != 1 else ''}"
    ns = shlex.join(_namespace_flag(info))
    ns = f" {ns}" if ns else ""
    first = info.skills[0]
    lines = [
        f"Pool {info.pool!r} is ready in namespace {info.namespace!r}: {workers} running "
        f"{info.app} from {info.project}.",
        "Skills: " + ", ".join(s.name for s in info.skills) + ".",
        "",
        "In another shell:",
        "",
        *(f"  {line}" for line in exports(info.kubeconfig, info.bin_dir, None)),
        "",
        *(f"  {submit_command(info, skill)}" for skill in info.skills),
        "",
        f"  kubectl create{ns} -f - <<'EOF'",
        *(f"  {line}" for line in job_manifest(info, first).splitlines()),
        "  EOF",
        f"  kubectl get{ns} sbj,wp,pods",
        "",
        *_restart_lines(info, ns),
        f"Worker logs: kubectl logs{ns} -l shiftboss.io/pool={info.pool}; "
        f"operator and control plane logs: {info.logs}",
        "",
        READY_LINE,
    ]
    return "\n".join(lines)


def _restart_lines(info: DevInfo, ns: str) -> list[str]:
    if info.reload:
        return [
            f"Saving a *.py file under {info.project} restarts the workers: they import your "
            "code again (a running attempt has a few seconds to finish, else it runs again on "
            "a new worker, not counted as a failure)."
        ]
    return [
        "Changed your code? Restart the workers (they import it again):",
        f"  kubectl delete pods{ns} -l shiftboss.io/pool={info.pool}",
    ]
