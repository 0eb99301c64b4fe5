"""Exec credential plugins (a real script run as a subprocess): tokens that expire and are
renewed, client certificates, and failures that name the command and show its stderr."""

from __future__ import annotations

import datetime as dt

import pytest
from kube_fakes import ExecPlugin, TlsServer, eventually, kubeconfig

from shiftboss.kube import credentials as credentials_module
from shiftboss.kube.client import KubeClient
from shiftboss.kube.config import KubeConfig, KubeConfigError
from shiftboss.testing.pki import write_pki


@pytest.fixture
def plugin(tmp_path) -> ExecPlugin:
    return ExecPlugin(tmp_path / "plugin")


def load(tmp_path, user) -> KubeConfig:
    return KubeConfig.from_file(kubeconfig(tmp_path / "config", user=user))


async def test_an_expiring_token_is_renewed_before_it_expires(tmp_path, plugin):
    plugin.lifetime(2.0)
    config = load(tmp_path, plugin.user())
    first = config.credentials.current
    assert first.authorization == "Bearer token-1"
    assert first.expires_at is not None and first.refresh_at is not None
    assert first.refresh_at < first.expires_at  # renewed ahead of expiry

    async def renewed() -> bool:
        return (await config.credentials.get()).authorization == "Bearer token-2"

    await eventually(renewed, timeout=5)
    assert plugin.calls() == 2


async def test_a_token_without_expiry_is_fetched_once(tmp_path, plugin):
    config = load(tmp_path, plugin.user())
    for _ in range(3):
        assert (await config.credentials.get()).authorization == "Bearer token-1"
    assert config.credentials.current.refresh_at is None
    assert plugin.calls() == 1


def test_a_token_in_the_kubeconfig_wins_over_the_plugin(tmp_path, plugin):
    config = load(tmp_path, plugin.user(token="static"))
    assert config.credentials.current.authorization == "Bearer static"
    assert plugin.calls() == 0


async def test_a_client_certificate_from_the_plugin_is_presented(tmp_path, plugin):
    pki = write_pki(tmp_path / "pki")
    plugin.print_status(
        {
            "clientCertificateData": pki.file("admin.crt").read_text(),
            "clientKeyData": pki.file("admin.key").read_text(),
        }
    )
    async with TlsServer(
        pki.file("apiserver.crt"), pki.file("apiserver.key"), pki.file("ca.crt")
    ) as url:
        path = kubeconfig(
            tmp_path / "config",
            server=url,
            cluster={"certificate-authority": str(pki.file("ca.crt"))},
            user=plugin.user(),
        )
        config = KubeConfig.from_file(path)
        assert config.credentials.current.authorization is None
        async with KubeClient(config) as client:
            assert await client.get("/whoami") == {"subject": "admin"}


@pytest.mark.parametrize(
    ("steer", "message"),
    [
        (
            lambda p: p.fail("error: SSO session expired, run `aws sso login`"),
            r"exec plugin `.*/credential-plugin --cluster test` failed: exec: process returned "
            r"3\. error: SSO session expired, run `aws sso login`; run it by hand to see why, "
            r"or fix users\[test\]\.user\.exec",
        ),
        (
            lambda p: p.print_status({"expirationTimestamp": "2030-01-01T00:00:00Z"}),
            r"exec plugin `.*` printed neither status.token nor status.clientCertificateData",
        ),
        (
            lambda p: p.print_status({"token": "t", "expirationTimestamp": "tomorrow"}),
            r"exec plugin `.*` failed: .*expirationTimestamp",
        ),
        (
            lambda p: p.command.write_text("#!/bin/sh\necho not json\n"),
            r"exec plugin `.*` failed: exec: failed to decode process output",
        ),
        (
            lambda p: p.command.unlink(),
            r"exec plugin `.*/credential-plugin --cluster test` failed: .*No such file",
        ),
    ],
    ids=["exits-with-stderr", "no-credential", "bad-expiry", "not-json", "not-found"],
)
def test_a_failing_plugin_names_the_command_and_shows_why(tmp_path, plugin, steer, message):
    steer(plugin)
    with pytest.raises(KubeConfigError, match=rf"kubeconfig .*/config: {message}"):
        load(tmp_path, plugin.user())


async def test_a_plugin_failing_later_keeps_the_old_token_until_it_works_again(
    tmp_path, plugin, monkeypatch
):
    monkeypatch.setattr(credentials_module, "REFETCH_INTERVAL", dt.timedelta())
    config = load(tmp_path, plugin.user())
    plugin.fail("cannot reach the identity provider")
    with pytest.raises(KubeConfigError, match="cannot reach the identity provider"):
        await config.credentials.renew()
    assert config.credentials.current.authorization == "Bearer token-1"
    (plugin.dir / "fail").unlink()
    monkeypatch.setattr(credentials_module, "RETRY_AFTER_FAILURE", dt.timedelta())
    assert (await config.credentials.renew()).authorization == "Bearer token-3"
