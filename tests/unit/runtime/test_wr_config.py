"""WorkerConfig.from_env: defaults, and errors that name the variable and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker_runtime import WorkerConfig
from worker_runtime.config import default_worker_id
from worker_runtime.errors import ConfigError

REQUIRED = {"SHIFTBOSS_OPERATOR_URL": "http://op:8081/", "SHIFTBOSS_POOL": "resize"}
HTTPS = {**REQUIRED, "SHIFTBOSS_OPERATOR_URL": "https://op:8081"}


def test_defaults() -> None:
    config = WorkerConfig.from_env(REQUIRED)
    assert config.operator_url == "http://op:8081"
    assert config.pool == "resize"
    assert config.worker_id == default_worker_id()
    assert config.token_file == Path("/var/run/secrets/shiftboss/token")
    assert config.concurrency == 1
    assert (config.pod_ip, config.health_port) == ("127.0.0.1", 8080)
    assert (config.log_format, config.log_level) == ("text", "INFO")
    assert (config.drain_timeout_seconds, config.claim_wait_seconds) == (30, 20)
    assert config.outcome_retry_seconds == 900  # 15 minutes of operator absence lose nothing
    assert config.ca_file is None and config.ca_data is None and config.tls_verify() is True


def test_every_variable_is_read() -> None:
    env = {
        **HTTPS,
        "SHIFTBOSS_WORKER_ID": "resize-abc12",
        "SHIFTBOSS_TOKEN_FILE": "/tmp/t",
        "SHIFTBOSS_CONCURRENCY": "4",
        "SHIFTBOSS_POD_IP": "10.0.0.7",
        "SHIFTBOSS_HEALTH_PORT": "0",
        "SHIFTBOSS_LOG_FORMAT": "JSON",
        "SHIFTBOSS_LOG_LEVEL": "debug",
        "SHIFTBOSS_DRAIN_TIMEOUT_SECONDS": "90",
        "SHIFTBOSS_CLAIM_WAIT_SECONDS": "5.5",
        "SHIFTBOSS_OUTCOME_RETRY_SECONDS": "0.5",
        "SHIFTBOSS_CA_FILE": "/etc/shiftboss/ca.crt",
    }
    config = WorkerConfig.from_env(env)
    assert config.model_dump() == {
        "operator_url": "https://op:8081",
        "pool": "resize",
        "worker_id": "resize-abc12",
        "token_file": Path("/tmp/t"),
        "concurrency": 4,
        "pod_ip": "10.0.0.7",
        "health_port": 0,
        "log_format": "json",
        "log_level": "DEBUG",
        "drain_timeout_seconds": 90.0,
        "claim_wait_seconds": 5.5,
        "outcome_retry_seconds": 0.5,
        "ca_file": Path("/etc/shiftboss/ca.crt"),
        "ca_data": None,  # one or the other: see test_ca_file_and_ca_data_exclude_each_other
    }
    ca_data = {**env, "SHIFTBOSS_CA_FILE": "", "SHIFTBOSS_CA_DATA": "-----BEGIN CERT..."}
    assert WorkerConfig.from_env(ca_data).ca_data == "-----BEGIN CERT..."


def test_missing_required_variables_are_all_named() -> None:
    with pytest.raises(ConfigError) as info:
        WorkerConfig.from_env({})
    message = str(info.value)
    assert "SHIFTBOSS_OPERATOR_URL is not set: set it to the operator's worker API URL" in message
    assert "SHIFTBOSS_POOL is not set" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("var", "value", "fix"),
    [
        ("SHIFTBOSS_OPERATOR_URL", "op:8081", "http:// or https:// URL"),
        ("SHIFTBOSS_POOL", "Resize_Pool", "lowercase DNS name"),
        ("SHIFTBOSS_WORKER_ID", "my worker", "lowercase DNS name"),
        ("SHIFTBOSS_CONCURRENCY", "0", "an integer from 1 to 1024"),
        ("SHIFTBOSS_CONCURRENCY", "many", "an integer from 1 to 1024"),
        ("SHIFTBOSS_POD_IP", "pod.local", "an IP address"),
        ("SHIFTBOSS_HEALTH_PORT", "70000", "0 to disable"),
        ("SHIFTBOSS_LOG_FORMAT", "xml", "'json' or 'text'"),
        ("SHIFTBOSS_LOG_LEVEL", "LOUD", "one of DEBUG, INFO"),
        ("SHIFTBOSS_DRAIN_TIMEOUT_SECONDS", "-1", "seconds >= 0"),
        ("SHIFTBOSS_CLAIM_WAIT_SECONDS", "120", "from 0 to 60"),
        ("SHIFTBOSS_OUTCOME_RETRY_SECONDS", "-1", "seconds >= 0"),
        ("SHIFTBOSS_OUTCOME_RETRY_SECONDS", "forever", "(default 900)"),
    ],
)
def test_invalid_values_name_the_variable_and_the_fix(var: str, value: str, fix: str) -> None:
    with pytest.raises(ConfigError) as info:
        WorkerConfig.from_env({**REQUIRED, var: value})
    message = str(info.value)
    assert message.startswith(f"{var}={value!r} is invalid")
    assert fix in message


def test_token_file_errors_are_clear(tmp_path: Path) -> None:
    config = WorkerConfig.from_env({**REQUIRED, "SHIFTBOSS_TOKEN_FILE": str(tmp_path / "t")})
    with pytest.raises(ConfigError, match=r"SHIFTBOSS_TOKEN_FILE=.*/t: no such file"):
        config.read_token()
    (tmp_path / "t").write_text("")
    with pytest.raises(ConfigError, match="the file is empty"):
        config.read_token()
    (tmp_path / "t").write_text("abc\n")
    assert config.read_token() == "abc"


def test_default_worker_id_is_a_valid_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "My_Laptop.local")
    assert default_worker_id() == "my-laptop.local"
    WorkerConfig(operator_url="http://x", pool="p")  # validates the default


@pytest.mark.parametrize("var", ["SHIFTBOSS_CA_FILE", "SHIFTBOSS_CA_DATA"])
def test_a_ca_needs_an_https_operator_url(var: str) -> None:
    with pytest.raises(ConfigError) as info:
        WorkerConfig.from_env({**REQUIRED, var: "/etc/ca.crt"})
    assert str(info.value) == (
        f"{var} is set but SHIFTBOSS_OPERATOR_URL=http://op:8081 is not https://: "
        f"use the operator's https:// URL, or unset {var}"
    )


def test_ca_file_and_ca_data_exclude_each_other() -> None:
    env = {**HTTPS, "SHIFTBOSS_CA_FILE": "/etc/ca.crt", "SHIFTBOSS_CA_DATA": "-----BEGIN..."}
    with pytest.raises(ConfigError) as info:
        WorkerConfig.from_env(env)
    message = str(info.value)
    assert message.startswith("SHIFTBOSS_CA_FILE and SHIFTBOSS_CA_DATA are both set:")
    assert "remove SHIFTBOSS_CA_FILE from the pool's env" in message


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("just text", "(it holds no PEM certificate)"),
        ("caf\u00e9 -----BEGIN CERTIFICATE-----", "(it holds no PEM certificate)"),
        ("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n", "("),
    ],
)
def test_unusable_ca_data_names_the_variable_and_the_fix(content: str, problem: str) -> None:
    config = WorkerConfig.from_env({**HTTPS, "SHIFTBOSS_CA_DATA": content})
    with pytest.raises(ConfigError) as info:
        config.tls_verify()
    message = str(info.value)
    assert message.startswith(f"SHIFTBOSS_CA_DATA: not a PEM CA bundle {problem}")
    assert "set it to the PEM text of the CA bundle that signed the operator's" in message
    assert "bm90IGEgY2VydA" not in message  # the bundle itself is not echoed


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "no such file"),
        ("", "not a PEM CA bundle"),
        (
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
            "not a PEM CA bundle",
        ),
        ("just text", "not a PEM CA bundle"),
    ],
)
def test_unusable_ca_files_name_the_variable_and_the_fix(
    tmp_path: Path, content: str | None, problem: str
) -> None:
    ca = tmp_path / "ca.crt"
    if content is not None:
        ca.write_text(content)
    config = WorkerConfig.from_env({**HTTPS, "SHIFTBOSS_CA_FILE": str(ca)})
    with pytest.raises(ConfigError) as info:
        config.tls_verify()
    message = str(info.value)
    assert message.startswith(f"SHIFTBOSS_CA_FILE={ca}: {problem}")
    assert "set it to the path of a PEM bundle of the CA that signed the operator's" in message


def test_an_unreadable_ca_file_is_a_config_error(tmp_path: Path) -> None:
    config = WorkerConfig.from_env({**HTTPS, "SHIFTBOSS_CA_FILE": str(tmp_path)})  # a directory
    with pytest.raises(
        ConfigError, match=r"^SHIFTBOSS_CA_FILE=.*: cannot read it: Is a directory$"
    ):
        config.tls_verify()
