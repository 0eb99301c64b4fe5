"""`shiftboss run --aging-seconds-per-level`: the aging rate is an operator setting, read
from the flag or its variable, checked at start, and handed to every pool's queue."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shiftboss.app import App
from shiftboss.cli import main
from shiftboss.jobs.settings import DispatchSettings
from shiftboss.settings import OperatorSettings

OPTION = "--aging-seconds-per-level (or SHIFTBOSS_AGING_SECONDS_PER_LEVEL): "


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SHIFTBOSS_AGING_SECONDS_PER_LEVEL", "KUBECONFIG"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def kubeconfig(tmp_path: Path) -> str:
    """A kubeconfig for a server that is never reached (building the App sends nothing)."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return str(path)


def test_the_default_is_the_dispatchers() -> None:
    assert OperatorSettings().aging_seconds_per_level == 60.0
    assert DispatchSettings().aging_seconds_per_level == 60.0


def test_the_rate_reaches_every_pools_queue(kubeconfig: str) -> None:
    app = App(OperatorSettings(kubeconfig=kubeconfig, aging_seconds_per_level=2.5))
    assert app.dispatcher.settings.aging_seconds_per_level == 2.5
    assert app.dispatcher.book.queues["team-a", "demo"].aging_seconds_per_level == 2.5


@pytest.mark.parametrize(
    ("args", "env", "problem"),
    [
        (["--aging-seconds-per-level", "0"], None, "Input should be greater than 0, got '0'"),
        (["--aging-seconds-per-level", "-5"], None, "Input should be greater than 0"),
        (
            ["--aging-seconds-per-level", "86401"],
            None,
            "Input should be less than or equal to 86400, got '86401'",
        ),
        (["--aging-seconds-per-level", "nan"], None, "Input should be a finite number"),
        ([], "fast", "Input should be a valid number, unable to parse string as a number"),
        ([], "1e12", "Input should be less than or equal to 86400"),
    ],
    ids=["zero", "negative", "over-a-day", "nan", "env-junk", "env-huge"],
)
def test_a_bad_rate_stops_the_operator_naming_the_option(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    env: str | None,
    problem: str,
) -> None:
    if env is not None:
        monkeypatch.setenv("SHIFTBOSS_AGING_SECONDS_PER_LEVEL", env)
    assert main(["run", *args]) == 2
    assert f"shiftboss run: {OPTION}{problem}" in capsys.readouterr().err


def test_the_flag_wins_over_its_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SHIFTBOSS_AGING_SECONDS_PER_LEVEL", "0")  # refused if it were read
    assert main(["run", "--aging-seconds-per-level", "1", "--kubeconfig", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert "cannot read kubeconfig /nonexistent" in err
    assert "AGING" not in err


def test_the_help_names_the_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "SHIFTBOSS_AGING_SECONDS_PER_LEVEL" in capsys.readouterr().out
