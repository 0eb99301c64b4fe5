"""``get``'s queue positions and ``workers``' table: the POSITION column and reasons, the
``--operator-*`` flags, and asking a (local, in-process) operator, reachable or not."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from shiftboss.api.job import Job
from shiftboss.commands.common import Session
from shiftboss.commands.operator import (
    DEFAULT_SERVICE,
    Operator,
    ServiceRef,
    add_operator_flags,
    service_ref,
)
from shiftboss.commands.positions import queue_views
from shiftboss.commands.render import render, table
from shiftboss.commands.workers import table as workers_table
from shiftboss.workerapi.view_models import PoolWorkersView, QueueView, WorkerView

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


def uid(n: int) -> str:
    return f"6f1c2a9e-0000-4000-8000-{n:012d}"


def job(n: int, phase: str | None = None, **status: Any) -> Job:
    return Job.model_validate(
        {
            "metadata": {
                "name": f"job-{n}",
                "namespace": "ns",
                "uid": uid(n),
                "creationTimestamp": "2025-01-01T11:56:40Z",
            },
            "spec": {"pool": "demo", "skill": "add", "params": {}},
            "status": {"phase": phase, **status} if phase else None,
        }
    )


def view(n: int, position: int | None, reason: str | None, queued: int = 3) -> QueueView:
    return QueueView(
        namespace="ns",
        name=f"job-{n}",
        uid=uid(n),
        pool="demo",
        skill="add",
        priority=5,
        phase="Pending",
        position=position,
        queued=queued,
        reason=reason,
        offered_by=1,
    )


def test_wide_table_shows_position_and_reason():
    jobs = [
        job(1),
        job(2, "Queued", message="written long ago"),
        job(3, "Running", attempt=1),
        job(4, "Retrying", attempt=1),
        job(5),
    ]
    queue = {
        uid(1): view(1, 2, "1 job(s) ahead of it in pool demo's queue"),
        uid(2): view(2, 1, "pool demo is paused (spec.paused)"),
        uid(4): view(4, None, "retrying: queued again at 2025-01-01T12:05:00+00:00"),
    }
    lines = table(jobs, wide=True, now=NOW, queue=queue).splitlines()
    assert lines[0].split()[-2:] == ["POSITION", "MESSAGE"]
    assert "2/3" in lines[1] and lines[1].endswith("1 job(s) ahead of it in pool demo's queue")
    assert "1/3" in lines[2] and lines[2].endswith("pool demo is paused (spec.paused)")
    assert "/" not in lines[3].split("Running")[1]  # not waiting: no position
    assert " - " in lines[4] and lines[4].endswith("+00:00")
    assert lines[5].endswith(" ?")  # waiting, the operator did not say, no message


def test_position_column_only_where_asked():
    jobs = [job(1)]
    assert "POSITION" not in table(jobs, now=NOW, queue={uid(1): view(1, 1, "x")})
    assert "POSITION" in render(jobs, None, single=True, queue={uid(1): view(1, 1, "x")})
    assert "POSITION" not in render(jobs, None, single=False)
    assert "POSITION" in render(jobs, "wide", single=False)


def test_operator_service_flag():
    assert service_ref(DEFAULT_SERVICE) == ServiceRef(
        "https", "shiftboss-system", "shiftboss", "worker-api"
    )
    ref = service_ref("ops/sb")
    assert ref.proxy_path("/v1/queue/a/b") == (
        "/api/v1/namespaces/ops/services/https:sb:worker-api/proxy/v1/queue/a/b"
    )
    assert service_ref("http:ops/sb:8000").scheme == "http"
    for bad in ("shiftboss", "ops/sb/x", "ftp:ops/sb", "Ops/sb"):
        with pytest.raises(argparse.ArgumentTypeError, match=r"NAMESPACE/NAME"):
            service_ref(bad)


def test_operator_flags_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SHIFTBOSS_OPERATOR_URL", "https://op:8000")
    monkeypatch.setenv("SHIFTBOSS_OPERATOR_CA_FILE", "/ca.pem")
    parser = argparse.ArgumentParser()
    add_operator_flags(parser)
    args = parser.parse_args([])
    assert (args.operator_url, args.operator_ca_file) == ("https://op:8000", "/ca.pem")
    assert parser.parse_args(["--operator-url", "http://x"]).operator_url == "http://x"


def test_workers_table():
    workers = PoolWorkersView(
        namespace="ns",
        pool="demo",
        uid=uid(9),
        registered=2,
        slots=5,
        busy=1,
        workers=[
            WorkerView(
                id="demo-a", pod="demo-a", skills=["add", "sleep"], slots=4, busy=1,
                draining=False, last_seen_seconds=3.2,
            ),
            WorkerView(
                id="laptop", pod=None, skills=["add"], slots=1, busy=0, draining=True,
                last_seen_seconds=130,
            ),
        ],
    )  # fmt: skip
    assert workers_table(workers).splitlines() == [
        "ID       POD      SKILLS      BUSY/SLOTS   STATE      LAST SEEN",
        "demo-a   demo-a   add,sleep   1/4          busy       3s ago",
        "laptop   <none>   add         0/1          draining   2m10s ago",
    ]


# -- asking an operator -----------------------------------------------------------------


@pytest.fixture
async def operator_url() -> AsyncIterator[str]:
    async def answer(request: web.Request) -> web.Response:
        n = int(request.match_info["uid"].rsplit("-", 1)[1])
        if n == 7:
            return web.json_response(
                {"error": {"code": "unknown_job", "message": "no"}}, status=404
            )
        return web.json_response(view(n, n, f"reason {n}").model_dump(mode="json"))

    app = web.Application()
    app.router.add_get("/v1/queue/{namespace}/{uid}", answer)
    server = TestServer(app, host="127.0.0.1")
    # No access log: its handler may write to a stream an earlier test's capture closed.
    await server.start_server(access_log=None)
    yield str(server.make_url("")).rstrip("/")
    await server.close()


def session(url: str) -> Session:
    parser = argparse.ArgumentParser()
    add_operator_flags(parser)
    args = parser.parse_args(["--operator-url", url])
    args.command = "get"
    return Session(args, "shiftboss")


async def test_views_of_the_waiting_jobs(operator_url: str, capsys: pytest.CaptureFixture[str]):
    s = session(operator_url)
    jobs = [job(1), job(2, "Running"), job(3), job(7)]
    views = await queue_views(s.args, s, "ns", jobs)
    assert {u: v.position for u, v in views.items()} == {uid(1): 1, uid(3): 3}
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"shiftboss get: queue position unknown for 1 job(s): the operator at {operator_url} "
        f"does not know job uid {uid(7)} (does it serve this namespace?)"
    ]


async def test_an_unreachable_operator_is_one_line(capsys: pytest.CaptureFixture[str]):
    s = session("http://127.0.0.1:9")  # discard port: nothing listens
    views = await queue_views(s.args, s, "ns", [job(1), job(3), job(5)])
    assert views == {}
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("shiftboss get: queue position unknown: cannot reach the operator at")


async def test_a_missing_ca_file_is_named(tmp_path):
    s = session("https://127.0.0.1:9")
    s.args.operator_ca_file = str(tmp_path / "nope.pem")
    operator = Operator(s.args, s)
    with pytest.raises(Exception, match=r"--operator-ca-file .*nope.pem"):
        await operator.queue("ns", uid(1))
    await operator.aclose()
