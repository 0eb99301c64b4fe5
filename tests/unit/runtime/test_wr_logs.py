"""Log records carry worker, job and attempt ids, as JSON or text."""

from __future__ import annotations

import io
import json
import logging

import pytest
from wr_fakes import FakeOperator

from worker_runtime import Context, Worker
from worker_runtime.logs import ContextLogger, JsonFormatter, TextFormatter, log_ids


@pytest.fixture
def captured():
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    from worker_runtime.logs import configure_logging

    handler = configure_logging("json", "INFO", stream)
    yield stream, handler
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_context_ids_and_extras(captured) -> None:
    stream, _ = captured
    with log_ids(worker_id="w1"), log_ids(job="ns/j", attempt_id="uid.2"):
        logging.getLogger("app").info("hello %s", "there", extra={"rows": 3})
    logging.getLogger("app").info("outside")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "hello there"
    assert (first["worker_id"], first["job"], first["attempt_id"]) == ("w1", "ns/j", "uid.2")
    assert first["rows"] == 3 and first["level"] == "INFO" and first["logger"] == "app"
    assert "attempt_id" not in second


def test_text_lines_and_context_logger() -> None:
    record_holder: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            record_holder.append(record)

    logger = logging.getLogger("wr-test-text")
    logger.addHandler(Keep())
    logger.propagate = False
    adapter = ContextLogger(logger, {"worker_id": "w1", "attempt_id": "u.1"})
    adapter.warning("careful", extra={"job": "ns/j"})
    [record] = record_holder
    text = TextFormatter().format(record)
    assert "WARNING wr-test-text [worker=w1 job=ns/j attempt=u.1] careful" in text
    assert json.loads(JsonFormatter().format(record))["job"] == "ns/j"


async def test_skill_logs_carry_ids_even_from_threads(captured, harness_factory) -> None:
    stream, _ = captured
    worker = Worker()

    @worker.skill()
    def sync_skill(params: dict, ctx: Context) -> None:
        logging.getLogger("user.code").info("from the thread")
        ctx.logger.info("from ctx.logger")

    harness = await harness_factory(worker)
    operator: FakeOperator = harness.operator
    attempt = operator.enqueue("sync_skill")
    await harness.report(attempt)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    mine = [e for e in lines if e["message"].startswith("from ")]
    assert len(mine) == 2
    for entry in mine:
        assert (entry["worker_id"], entry["job"], entry["attempt_id"]) == (
            "w1",
            "ns/job-1",
            attempt,
        )
