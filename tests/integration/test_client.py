"""The Python client against a real API server, operator and demo pool: results, the
failure exceptions, cancellation, timeouts, get and list, for the async client and the
blocking one (also called from inside a running event loop); and docs/client.md's
examples, run as written, their ``# prints:`` comments checked."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
import yaml
from conftest import apply, pool_manifest

from shiftboss import (
    AsyncClient,
    Client,
    JobCancelled,
    JobFailed,
    JobNotFound,
    WaitTimeout,
)
from shiftboss.api.job import is_terminal

DOC = Path(__file__).resolve().parents[2] / "docs" / "client.md"
#: The first job waits for the pool's worker to start.
FIRST_RUN_TIMEOUT = 120


@pytest.fixture
def demo_pool(cluster, namespace, operator) -> None:
    apply(cluster, namespace, pool_manifest("demo", concurrency=4))


async def test_the_async_client_runs_fails_cancels_times_out_gets_and_lists(
    cluster, namespace, demo_pool
):
    async with AsyncClient(namespace, kubeconfig=cluster.kubeconfig) as sb:
        assert await sb.run("demo", "add", {"a": 2, "b": 3}, timeout=FIRST_RUN_TIMEOUT) == 5

        with pytest.raises(JobFailed) as failed:
            await sb.run("demo", "explode", {"message": "kaboom"}, timeout=60)
        assert (failed.value.error_type, failed.value.message) == ("FatalError", "kaboom")

        sleeper = await sb.submit("demo", "sleep", {"seconds": 300}, name="sleeper")
        with pytest.raises(WaitTimeout) as timed_out:
            await sb.wait(sleeper, timeout=0.5)
        assert timed_out.value.job.name == "sleeper"
        still = await sb.get("sleeper")
        assert still.status is None or not is_terminal(still.status.phase)  # left running

        await sb.cancel("sleeper")
        with pytest.raises(JobCancelled):
            await sb.wait("sleeper", timeout=60)

        phases = {job.spec.skill: job.status.phase for job in await sb.list(pool="demo")}
        assert phases == {"add": "Succeeded", "explode": "Failed", "sleep": "Cancelled"}
        assert [job.spec.skill for job in await sb.list(phase="Failed")] == ["explode"]
        assert await sb.list(pool="other") == []
        with pytest.raises(JobNotFound, match=f"job nope not found in namespace {namespace}"):
            await sb.get("nope")


async def test_the_blocking_client_works_inside_a_running_event_loop(cluster, namespace, demo_pool):
    with Client(namespace, kubeconfig=cluster.kubeconfig) as sb:
        assert sb.run("demo", "add", {"a": 20, "b": 22}, timeout=FIRST_RUN_TIMEOUT) == 42
        with pytest.raises(JobFailed, match="FatalError: boom"):
            sb.run("demo", "explode", timeout=60)
        sleeper = sb.submit("demo", "sleep", {"seconds": 300})
        with pytest.raises(WaitTimeout):
            sb.wait(sleeper, timeout=0.5)
        assert sb.cancel(sleeper.name).spec.cancel
        with pytest.raises(JobCancelled):
            sb.wait(sleeper, timeout=60)
        assert sb.get(sleeper.name).status.phase == "Cancelled"


def test_the_client_docs_examples_run_as_written(
    cluster, namespace, demo_pool, tmp_path, monkeypatch
):
    # The docs use the current context's namespace: make it the test's.
    config = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    for context in config["contexts"]:
        context["context"]["namespace"] = namespace
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    # The first job waits for the pool's worker to start (the docs' timeouts are shorter);
    # it is deleted so that the docs' list of succeeded jobs sees only their own.
    with Client() as sb:
        sb.wait(sb.submit("demo", "sleep", {"seconds": 0}, name="warm-up"), FIRST_RUN_TIMEOUT)
    cluster.kubectl("-n", namespace, "delete", "jobs.shiftboss.io", "warm-up")

    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 5
    scope: dict[str, object] = {}
    for block in blocks:
        expected = re.findall(r"# prints: (.*)$", block, flags=re.MULTILINE)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block, str(DOC), "exec"), scope)
        assert out.getvalue().splitlines() == expected, block
