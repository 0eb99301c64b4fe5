"""The job commands' input: argument parsing, params (``k=v`` with JSON values), Job
manifests, durations, and which exit code and message each error gets."""

from __future__ import annotations

import argparse
import json

import httpx
import pytest
from pydantic import ValidationError

from shiftboss.api.job import Job
from shiftboss.cli import build_parser, main
from shiftboss.client import (
    JobCancelled,
    JobFailed,
    JobNotFound,
    PermissionDenied,
    RequestFailed,
    WaitTimeout,
)
from shiftboss.commands import program_name
from shiftboss.commands.common import Exit, UsageError, describe, duration, exit_code
from shiftboss.commands.params import param, submission
from shiftboss.kube.config import KubeConfigError

JOB = {
    "apiVersion": "shiftboss.io/v1alpha1",
    "kind": "Job",
    "metadata": {"name": "from-file", "namespace": "team", "labels": {"team": "a"}},
    "spec": {
        "pool": "demo",
        "skill": "add",
        "params": {"a": 1, "b": 1},
        "priority": 9,
        "retry": {"maxAttempts": 1},
    },
}


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a=2", ("a", 2)),
        ("name=bob", ("name", "bob")),
        ('quoted="2"', ("quoted", "2")),
        ("flag=true", ("flag", True)),
        ("tags=[1, 2]", ("tags", [1, 2])),
        ('obj={"k": null}', ("obj", {"k": None})),
        ("url=http://x/?a=b", ("url", "http://x/?a=b")),  # only the first '=' splits
        ("empty=", ("empty", "")),
    ],
)
def test_a_param_value_is_json_when_it_parses_else_a_string(text, expected):
    assert param(text) == expected


@pytest.mark.parametrize("text", ["novalue", "=3", " =3"])
def test_a_param_without_a_key_is_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match="expected KEY=VALUE"):
        param(text)


def test_submit_flags_make_the_submission():
    args = parse(
        "submit", "demo", "add", "-p", "a=2", "--param", "b=3", "--priority", "8",
        "--timeout-seconds", "30", "--name", "sum", "--wait", "--timeout", "5m", "-n", "team",
    )  # fmt: skip
    what = submission(args)
    assert (what.pool, what.skill, what.params) == ("demo", "add", {"a": 2, "b": 3})
    assert what.options == {"priority": 8, "timeout_seconds": 30, "name": "sum"}
    assert (what.namespace, args.wait, args.timeout) == ("team", True, 300)


def test_params_merge_file_then_json_then_each_param(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(json.dumps(JOB))
    args = parse("submit", "-f", str(path), "--params-json", '{"b": 5, "c": 0}', "-p", "c=7")
    what = submission(args)
    assert what.params == {"a": 1, "b": 5, "c": 7}
    assert (what.pool, what.skill, what.namespace) == ("demo", "add", "team")
    assert what.options["name"] == "from-file"
    assert what.options["priority"] == 9
    assert what.options["labels"] == {"team": "a"}
    assert what.options["retry"].max_attempts == 1
    assert "timeout_seconds" not in what.options  # not set in the file: the server's default


def test_flags_override_the_manifest(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(json.dumps(JOB))
    what = submission(parse("submit", "other", "-f", str(path), "--generate-name", "g-"))
    assert what.pool == "other"
    assert what.options["generate_name"] == "g-"
    assert "name" not in what.options


def test_a_manifest_namespace_must_agree_with_dash_n(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(json.dumps(JOB))
    with pytest.raises(UsageError, match="namespace team does not match -n other"):
        submission(parse("submit", "-f", str(path), "-n", "other"))


def test_submit_needs_pool_and_skill():
    with pytest.raises(UsageError, match="give POOL and SKILL"):
        submission(parse("submit", "demo"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("kind: Pod\napiVersion: v1\n", "expected apiVersion shiftboss.io/v1alpha1 and kind Job"),
        ("[1, 2]", "expected one Job object"),
        (": : :", "cannot read"),
        (
            json.dumps({**JOB, "spec": {**JOB["spec"], "cancel": True}}),
            "submit does not send spec.cancel",
        ),
        (json.dumps({**JOB, "spec": {**JOB["spec"], "priority": 99}}), "spec.priority"),
    ],
)
def test_a_bad_manifest_is_a_usage_error(tmp_path, capsys, content, message):
    path = tmp_path / "job.yaml"
    path.write_text(content)
    with pytest.raises(SystemExit) as exited:
        parse("submit", "-f", str(path))
    assert exited.value.code == Exit.USAGE
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["submit", "demo", "add", "--params-json", "[1]"],
        ["submit", "demo", "add", "--params-json", "{"],
        ["submit", "demo", "add", "--wait", "--timeout", "soon"],
        ["submit", "demo", "add", "--name", "a", "--generate-name", "b-"],
        ["get", "-o", "table"],
        ["get", "--phase", "Done"],
        ["get", "-l", "team"],
        ["wait"],
        ["logs", "job", "--attempt", "one"],
    ],
)
def test_bad_flags_exit_2_before_any_request(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == Exit.USAGE
    assert "error:" in capsys.readouterr().err


def test_input_refused_after_parsing_exits_2_without_a_cluster(capsys, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    assert main(["submit", "demo"]) == Exit.USAGE  # checked before credentials are read
    assert "give POOL and SKILL" in capsys.readouterr().err
    assert main(["get"]) == Exit.API
    assert "cannot read kubeconfig /nonexistent/kubeconfig" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("1.5s", 1.5), ("500ms", 0.5), ("5m", 300), ("1h30m", 5400), ("2h", 7200)],
)
def test_durations_read_as_kubectl_reads_timeout(text, seconds):
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5 m", "5x", "1h-3m", "0", "0s", "-1", "nan"])
def test_bad_durations_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError):
        duration(text)


def _job(phase: str = "Running") -> Job:
    return Job.model_validate(
        {**JOB, "metadata": {"name": "x", "namespace": "ns"}, "status": {"phase": phase}}
    )


def _invalid() -> ValidationError:
    try:
        Job.model_validate({**JOB, "spec": {**JOB["spec"], "priority": 11}})
    except ValidationError as exc:
        return exc
    raise AssertionError("priority 11 was accepted")


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (JobFailed(_job("Failed"), "FatalError", "boom"), Exit.JOB_FAILED),
        (JobCancelled(_job("Cancelled")), Exit.JOB_FAILED),
        (WaitTimeout(_job(), 1.0), Exit.TIMEOUT),
        (UsageError("bad"), Exit.USAGE),
        (_invalid(), Exit.USAGE),
        (RequestFailed("invalid", 422, "Invalid"), Exit.USAGE),
        (JobNotFound("job x not found", 404, "NotFound"), Exit.API),
        (PermissionDenied("cannot get", 403, "Forbidden"), Exit.API),
        (RequestFailed("exists", 409, "AlreadyExists"), Exit.API),
        (RequestFailed("unauthorized", 401, "Unauthorized"), Exit.API),
        (KubeConfigError("no kubeconfig"), Exit.API),
        (httpx.ConnectError("refused"), Exit.API),
        (ValueError("a bug"), None),
    ],
)
def test_exit_codes(error, code):
    assert exit_code(error) == code


def test_messages_name_the_object_and_the_next_command():
    args = argparse.Namespace(namespace="ns")
    timed_out = describe(WaitTimeout(_job(), 2.0), "kubectl shiftboss", args)
    assert "job x in namespace ns did not finish within 2s (phase Running)" in timed_out
    assert "(kubectl shiftboss wait x -n ns, or kubectl shiftboss cancel x -n ns)" in timed_out
    missing = describe(JobNotFound("job y not found in namespace ns", 404, ""), "sb", args)
    assert missing.endswith("list the namespace's jobs with: sb get -n ns")
    request = httpx.Request("GET", "https://10.0.0.1:6443/apis")
    unreachable = describe(httpx.ConnectError("refused", request=request), "sb", args)
    assert "cannot reach the API server 10.0.0.1: refused" in unreachable
    assert "--kubeconfig" in unreachable
    assert describe(_invalid(), "sb", args).startswith("invalid job: spec.priority:")


@pytest.mark.parametrize(
    ("argv0", "prog"),
    [
        ("/usr/local/bin/kubectl-shiftboss", "kubectl shiftboss"),
        ("kubectl-shiftboss", "kubectl shiftboss"),
        (".venv/bin/shiftboss", "shiftboss"),
        ("/x/pytest", "shiftboss"),
    ],
)
def test_the_program_name_follows_how_it_was_run(argv0, prog):
    assert program_name(argv0) == prog


def test_usage_names_kubectl_shiftboss_when_run_as_the_plugin(monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["/bin/kubectl-shiftboss"])
    with pytest.raises(SystemExit):
        main(["get", "-o", "table"])
    assert capsys.readouterr().err.startswith("usage: kubectl shiftboss get")
