"""Run the Argo CD health checks of deploy/argocd the way Argo CD does: Lua 5.1 (Argo CD
embeds gopher-lua) with only the libraries Argo CD opens (base, table, package and a
safe ``os`` of ``time`` and ``date``; no ``string``, ``math`` or ``io``), the object as
the global ``obj``, and the script's returned table as the health."""

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


def health(kind: str, obj: dict[str, Any]) -> tuple[str, str]:
    """(status, message) of Argo CD's health check for ``obj`` (a ``kind`` of shiftboss.io)."""
    lua = lupa.LuaRuntime()
    lua.execute(_ARGO_SANDBOX)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(script(kind).read_text())
    status, message = result["status"], result["message"]
    assert status in STATUSES, status
    assert isinstance(message, str) and message, message
    return status, message
