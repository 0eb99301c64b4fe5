"""The Go smoke image's binary accepts the operator's worker command.

The image installs the smoke example as `shiftboss-worker`, and the operator starts
every worker pod as `shiftboss-worker run --app <app>`: the binary must take those
arguments and get as far as reading its SHIFTBOSS_* configuration.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SDK = Path(__file__).resolve().parents[3] / "sdk" / "go"


def test_smoke_binary_takes_the_operators_command(tmp_path: Path) -> None:
    go = shutil.which("go")
    if go is None:
        pytest.fail("go is not on PATH (a prerequisite of this repository: see README)")
    binary = tmp_path / "shiftboss-worker"
    env = {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}
    subprocess.run(
        [go, "build", "-o", str(binary), "./examples/smoke"],
        cwd=SDK,
        env=env,
        check=True,
        timeout=240,
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SHIFTBOSS_")}
    result = subprocess.run(
        [str(binary), "run", "--app", "smoke:worker"],
        env=clean,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2, result.stderr
    assert "bad configuration" in result.stderr and "SHIFTBOSS_OPERATOR_URL" in result.stderr
