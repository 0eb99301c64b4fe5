"""`shiftboss` command line: bad flags and variables name the option and change nothing."""

from __future__ import annotations

import pytest
import yaml

from shiftboss.cli import main


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["--port", "-1"],
            {},
            "--port (or SHIFTBOSS_PORT): Input should be greater than or equal to 0",
        ),
        (
            ["--port", "99999"],
            {},
            "--port (or SHIFTBOSS_PORT): Input should be less than or equal to 65535",
        ),
        (
            [],
            {"SHIFTBOSS_PORT": "abc"},
            "--port (or SHIFTBOSS_PORT): Input should be a valid integer",
        ),
        (["--worker-api-url", "notaurl"], {}, "must be an http:// or https:// URL"),
        (
            ["--lease-seconds", "0"],
            {},
            "--lease-seconds (or SHIFTBOSS_LEASE_SECONDS): Input should be greater than 0",
        ),
        (
            [],
            {"SHIFTBOSS_HEARTBEAT_SECONDS": "often"},
            "--heartbeat-seconds (or SHIFTBOSS_HEARTBEAT_SECONDS)",
        ),
        (
            ["--kubeconfig", "/nonexistent/kubeconfig"],
            {},
            "cannot read kubeconfig /nonexistent/kubeconfig",
        ),
    ],
    ids=[
        "port-negative",
        "port-too-big",
        "port-env-not-int",
        "url-not-http",
        "lease-zero",
        "heartbeat-env-junk",
        "kubeconfig-missing",
    ],
)
def test_bad_run_options_name_the_option(args, env, message, monkeypatch, capsys):
    for name in ("SHIFTBOSS_PORT", "SHIFTBOSS_HEARTBEAT_SECONDS", "KUBECONFIG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["run", *args]) == 2
    assert message in capsys.readouterr().err


def test_flag_wins_over_variable(monkeypatch, capsys):
    monkeypatch.setenv("SHIFTBOSS_PORT", "abc")  # would be refused if it were used
    assert main(["run", "--port", "8001", "--kubeconfig", "/nonexistent"]) == 2
    assert "SHIFTBOSS_PORT" not in capsys.readouterr().err


def test_namespace_and_all_namespaces_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "-n", "a", "-A"])
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_crds_prints_both_definitions(capsys):
    assert main(["crds"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    assert [d["metadata"]["name"] for d in docs] == [
        "workerpools.shiftboss.io",
        "jobs.shiftboss.io",
    ]
