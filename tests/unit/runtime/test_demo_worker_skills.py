"""The demo worker's skills, unit-tested with ``worker_runtime.testing``: the example of
docs/testing-skills.md, run here as written so the documentation cannot rot."""

from __future__ import annotations

import asyncio
import inspect
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "testing-skills.md"


def _doc_tests() -> dict[str, Callable[[], Any]]:
    """The ``test_*`` functions of the doc's python block, compiled against the doc's
    own line numbers (a failure points into the doc), with ``examples/`` importable as
    it is for a test module that sits next to ``demo_worker.py``."""
    text = DOC.read_text()
    blocks = list(re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M))
    assert len(blocks) == 1, f"{DOC.name}: expected one python block, found {len(blocks)}"
    block = blocks[0]
    padding = "\n" * text[: block.start(1)].count("\n")
    namespace: dict[str, Any] = {"__name__": "test_demo_worker"}
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        exec(compile(padding + block.group(1), str(DOC), "exec"), namespace)
    finally:
        sys.path.remove(str(ROOT / "examples"))
    return {k: v for k, v in namespace.items() if k.startswith("test_") and callable(v)}


DOC_TESTS = _doc_tests()


def test_the_doc_tests_every_demo_skill():
    called = re.findall(r'env\.run(?:_sync)?\("(\w+)"', DOC.read_text())
    assert set(called) == {"resize", "add", "sleep", "explode"}
    assert len(DOC_TESTS) >= 6


@pytest.mark.parametrize("name", sorted(DOC_TESTS))
def test_the_documented_example(name: str):
    test = DOC_TESTS[name]
    if inspect.iscoroutinefunction(test):
        asyncio.run(test())
    else:
        test()
