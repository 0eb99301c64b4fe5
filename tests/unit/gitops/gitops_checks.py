"""How GitOps tools read Shiftboss objects, for the unit and integration tests.

* ``health``: the Argo CD health checks of deploy/argocd, run the way Argo CD runs them:
  Lua 5.1 (Argo CD embeds gopher-lua) with only the libraries Argo CD opens (base, table,
  package and a safe ``os`` of ``time`` and ``date``; no ``string``, ``math`` or ``io``),
  the object as the global ``obj``, the script's returned table as the health.
* ``kstatus``: kstatus's generic rules (sigs.k8s.io/cli-utils/pkg/kstatus), which Flux,
  kpt and Helm 4's ``--wait`` apply to custom resources.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

try:
    from lupa import lua51 as lupa
except ImportError:  # a lupa built without its Lua 5.1 runtime
    import lupa  # type: ignore[no-redef]

ARGOCD = Path(__file__).resolve().parents[3] / "deploy" / "argocd"
#: What Argo CD accepts as a health status.
STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}
_ARGO_SANDBOX = """
local safe_os = {time = os.time, date = os.date}
string, math, io, debug, coroutine = nil, nil, nil, nil, nil
getmetatable("").__index = nil  -- no ("text"):find(...) either
os = safe_os
"""


def script(kind: str) -> Path:
    return ARGOCD / "shiftboss.io" / kind / "health.lua"


def health(kind: str, obj: dict[str, Any], source: str | None = None) -> tuple[str, str]:
    """(status, message) of Argo CD's health check for ``obj`` (a ``kind`` of shiftboss.io);
    ``source``: the Lua to run instead of deploy/argocd's (as read from argocd-cm, say)."""
    lua = lupa.LuaRuntime()
    lua.execute(_ARGO_SANDBOX)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(source if source is not None else script(kind).read_text())
    status, message = result["status"], result["message"]
    assert status in STATUSES, status
    assert isinstance(message, str) and message, message
    return status, message


def kstatus(obj: dict[str, Any]) -> str:
    """kstatus's ``Compute`` for a custom resource: deletion, then an unobserved
    generation, then Reconciling / Stalled while True; otherwise Current."""
    if obj["metadata"].get("deletionTimestamp"):
        return "Terminating"
    status = obj.get("status") or {}
    generation = obj["metadata"].get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and observed is not None and observed != generation:
        return "InProgress"
    for condition in status.get("conditions") or []:
        if condition["type"] == "Reconciling" and condition["status"] == "True":
            return "InProgress"
        if condition["type"] == "Stalled" and condition["status"] == "True":
            return "Failed"
    return "Current"
