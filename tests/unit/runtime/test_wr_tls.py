"""SHIFTBOSS_CA_FILE: the worker verifies the operator's certificate against it, over a
real TLS server on 127.0.0.1, and says clearly when the certificate is not trusted."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from wr_fakes import FakeOperator, make_config, wait_until

from worker_runtime import Worker
from worker_runtime.errors import ConfigError


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is not None:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def write_ca_and_server_cert(directory: Path, name: str) -> tuple[Path, ssl.SSLContext]:
    """A CA (``<name>-ca.crt``) and a serving context for 127.0.0.1 signed by it."""
    ca_key, server_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = _cert(f"{name} CA", ca_key, None)
    server = _cert("operator", server_key, (ca, ca_key))
    ca_file = directory / f"{name}-ca.crt"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / f"{name}.crt").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    (directory / f"{name}.key").write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(directory / f"{name}.crt", directory / f"{name}.key")
    return ca_file, context


def one_skill_worker() -> Worker:
    worker = Worker()

    @worker.skill()
    async def echo(params: dict) -> dict:
        return params

    return worker


@pytest.fixture
async def tls_operator(tmp_path: Path):
    ca_file, context = write_ca_and_server_cert(tmp_path, "right")
    operator = await FakeOperator(tls=context).start()
    (tmp_path / "token").write_text("t0ken")
    yield operator, ca_file
    await operator.stop()


def trust(source: str, ca_file: Path) -> dict[str, Any]:
    """The config that trusts the CA of ``ca_file``: the file, or its text (as the
    operator gives it to the pods it makes)."""
    return {"ca_file": ca_file} if source == "file" else {"ca_data": ca_file.read_text()}


@pytest.mark.parametrize("source", ["file", "data"])
async def test_the_worker_verifies_the_operator_with_the_ca(
    tls_operator, tmp_path: Path, source: str
) -> None:
    operator, ca_file = tls_operator
    assert operator.url.startswith("https://127.0.0.1:")
    config = make_config(
        operator_url=operator.url, token_file=tmp_path / "token", **trust(source, ca_file)
    )
    worker = one_skill_worker()
    serving = asyncio.create_task(worker.serve(config, handle_signals=False))
    try:
        attempt = operator.enqueue("echo", {"over": "tls"})
        await wait_until(lambda: attempt in operator.reports, 5, "the report over TLS")
        assert operator.reports[attempt] == ("complete", {"result": {"over": "tls"}})
        assert operator.auth_headers[0] == "Bearer t0ken"
        worker.drain()
        await asyncio.wait_for(serving, 5)
    finally:
        serving.cancel()


async def test_a_wrong_ca_file_is_a_clear_config_error(tls_operator, tmp_path: Path) -> None:
    operator, _ = tls_operator
    wrong_ca, _ = write_ca_and_server_cert(tmp_path, "wrong")
    config = make_config(operator_url=operator.url, ca_file=wrong_ca, token_file=tmp_path / "token")
    with pytest.raises(ConfigError) as info:
        await asyncio.wait_for(one_skill_worker().serve(config, handle_signals=False), 5)
    message = str(info.value)
    assert message.startswith(
        f"SHIFTBOSS_CA_FILE={wrong_ca}: the operator's certificate at {operator.url} is not "
        "signed by it ("
    )
    assert "certificate verify failed" in message or "unable to get local issuer" in message
    assert message.endswith(
        "set SHIFTBOSS_CA_FILE to the CA bundle that signed the operator's serving certificate"
    )
    assert operator.registers == []  # nothing was sent over an unverified connection


async def test_a_wrong_ca_data_is_a_clear_config_error(tls_operator, tmp_path: Path) -> None:
    operator, _ = tls_operator
    wrong_ca, _ = write_ca_and_server_cert(tmp_path, "wrong")
    config = make_config(
        operator_url=operator.url, ca_data=wrong_ca.read_text(), token_file=tmp_path / "token"
    )
    with pytest.raises(ConfigError) as info:
        await asyncio.wait_for(one_skill_worker().serve(config, handle_signals=False), 5)
    message = str(info.value)
    assert message.startswith(
        f"SHIFTBOSS_CA_DATA: the operator's certificate at {operator.url} is not signed by it ("
    )
    assert message.endswith(
        "give the operator (--worker-ca-file) the CA bundle that signed its serving certificate"
    )
    assert operator.registers == []


async def test_without_a_ca_file_an_untrusted_operator_says_what_to_set(
    tls_operator, tmp_path: Path
) -> None:
    operator, _ = tls_operator
    config = make_config(operator_url=operator.url, token_file=tmp_path / "token")
    with pytest.raises(
        ConfigError, match=r"not trusted by the system's CAs .*set SHIFTBOSS_CA_FILE"
    ):
        await asyncio.wait_for(one_skill_worker().serve(config, handle_signals=False), 5)
    assert operator.registers == []
