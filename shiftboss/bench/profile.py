"""``SHIFTBOSS_BENCH_PROFILE=1``: py-spy attached to the operator during the biggest
burst. The raw profile (collapsed stacks, one ``frame;frame;... count`` per line) is
written under ``bench-results/`` and summarised as the functions with the most own
time (samples where the function was the innermost frame)."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import TracebackType

RATE_HZ = 100


def top_own(collapsed: str, count: int = 15) -> list[tuple[str, float]]:
    """The ``count`` innermost frames with the most samples, as (frame, % of samples)."""
    own: Counter[str] = Counter()
    for line in collapsed.splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack or not samples.isdigit():
            continue
        own[stack.rsplit(";", 1)[-1]] += int(samples)
    total = sum(own.values())
    return [(frame, round(100 * n / total, 1)) for frame, n in own.most_common(count)]


def py_spy() -> str:
    """py-spy beside this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if not found:
        raise FileNotFoundError("py-spy not found: `pip install py-spy` (it is in .[dev])")
    return found


class Profiler:
    """``with Profiler(pid, out):`` samples ``pid`` until the block ends."""

    def __init__(self, pid: int, out: Path, log: Path) -> None:
        self.pid, self.out, self.log = pid, out, log
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Profiler:
        argv = [py_spy(), "record", "--pid", str(self.pid), "--format", "raw", "--nolineno"]
        argv += ["--rate", str(RATE_HZ), "--nonblocking", "-o", str(self.out)]
        with open(self.log, "ab") as log:
            self._proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is None:
            return
        self._proc.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        try:
            self._proc.wait(30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(5)

    def top(self, count: int = 15) -> list[tuple[str, float]]:
        """The summary, or a one-line reason when py-spy wrote nothing."""
        if not self.out.exists():
            tail = self.log.read_text(errors="replace")[-300:] if self.log.exists() else ""
            return [(f"py-spy wrote no profile: {tail.strip()}", 0.0)]
        return top_own(self.out.read_text(errors="replace"), count)
