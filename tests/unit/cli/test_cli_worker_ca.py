"""`shiftboss run --worker-ca-file`: the CA bundle given to workers is checked at start,
and an unusable one stops the operator with a message naming the option."""

from __future__ import annotations

from pathlib import Path

import pytest

from shiftboss.cli import main
from shiftboss.settings import OperatorSettings
from shiftboss.testing.pki import write_self_signed

OPTION = "--worker-ca-file (or SHIFTBOSS_WORKER_CA_FILE): Value error, "


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    cert, _key = write_self_signed(tmp_path / "tls", "operator", ("127.0.0.1",))
    return cert


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SHIFTBOSS_WORKER_CA_FILE", "SHIFTBOSS_WORKER_API_URL", "KUBECONFIG"):
        monkeypatch.delenv(name, raising=False)


def test_the_bundle_is_read_for_the_workers(ca: Path) -> None:
    settings = OperatorSettings(worker_ca_file=str(ca), worker_api_url="https://op.svc:8000")
    assert settings.worker_ca_data() == ca.read_text()
    assert OperatorSettings().worker_ca_data() is None


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot read it: No such file or directory"),
        ("just text", "not a PEM CA bundle (it holds no PEM certificate)"),
        ("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n", "not a PEM"),
    ],
    ids=["missing", "text", "bad-pem"],
)
def test_an_unusable_bundle_stops_the_operator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, problem: str
) -> None:
    path = tmp_path / "ca.crt"
    if content is not None:
        path.write_text(content)
    args = ["run", "--worker-api-url", "https://op.svc:8000", "--worker-ca-file", str(path)]
    assert main(args) == 2
    assert f"shiftboss run: {OPTION}{problem}" in capsys.readouterr().err


def test_a_bundle_without_https_stops_the_operator(
    ca: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SHIFTBOSS_WORKER_CA_FILE", str(ca))  # the variable is read too
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert f"{OPTION}workers verify the worker API with it over https only" in err


@pytest.mark.parametrize(
    "https",
    [
        ["--worker-api-url", "https://op.svc:8000"],
        ["--tls-cert-file", "cert.pem", "--tls-key-file", "key.pem"],
    ],
    ids=["https-url", "serving-tls"],
)
def test_a_good_bundle_over_https_is_accepted(
    ca: Path, capsys: pytest.CaptureFixture[str], https: list[str]
) -> None:
    # Settings pass; the run stops later, at the kubeconfig.
    assert main(["run", *https, "--worker-ca-file", str(ca), "--kubeconfig", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert "worker-ca-file" not in err and "cannot read kubeconfig /nonexistent" in err
