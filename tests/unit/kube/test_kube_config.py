"""Loading kubeconfigs with the ``kubernetes`` package's loaders: merged KUBECONFIG
files, token files, proxies, TLS server names, impersonation, in-cluster credentials,
and errors that name the file and the fix."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx
import pytest
import yaml
from kube_fakes import RecordingProxy, TlsServer, kubeconfig

from shiftboss.kube import config as config_module
from shiftboss.kube import credentials as credentials_module
from shiftboss.kube.client import KubeClient
from shiftboss.kube.config import KubeConfig, KubeConfigError
from shiftboss.kube.kopf_login import login
from shiftboss.testing.pki import write_self_signed


def test_merged_kubeconfig_files_take_the_context_from_one_and_the_user_from_another(
    tmp_path, monkeypatch
):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    (first / "config").write_text(
        yaml.safe_dump(
            {
                "current-context": "work",
                "contexts": [
                    {"name": "work", "context": {"cluster": "c", "user": "u", "namespace": "team"}}
                ],
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:7001"}}],
            }
        )
    )
    (second / "config").write_text(
        yaml.safe_dump(
            {
                "current-context": "elsewhere",  # the first file's current-context wins
                "users": [{"name": "u", "user": {"tokenFile": "token"}}],
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9999"}}],
            }
        )
    )
    (second / "token").write_text("from-b\n")  # relative to the file that names it
    missing = tmp_path / "missing"
    monkeypatch.setenv("KUBECONFIG", f"{first / 'config'}:{missing}:{second / 'config'}")
    config = KubeConfig.load()
    assert config.server == "http://127.0.0.1:7001"  # the first file to define `c` wins
    assert config.namespace == "team"
    assert config.credentials.current.authorization == "Bearer from-b"


async def test_a_token_file_is_read_again_when_it_rotates(tmp_path, monkeypatch):
    token = tmp_path / "token"
    token.write_text("first")
    config = KubeConfig.from_file(kubeconfig(tmp_path / "config", user={"tokenFile": str(token)}))
    current = config.credentials.current
    assert current.authorization == "Bearer first"
    assert current.refresh_at is not None
    assert current.refresh_at - dt.datetime.now(dt.UTC) > dt.timedelta(seconds=55)
    token.write_text("second")
    assert (await config.credentials.renew()).authorization == "Bearer first"  # just read
    monkeypatch.setattr(credentials_module, "REFETCH_INTERVAL", dt.timedelta())
    assert (await config.credentials.renew()).authorization == "Bearer second"


def test_a_static_token_is_never_renewed(tmp_path):
    config = KubeConfig.from_file(kubeconfig(tmp_path / "config", user={"token": "abc"}))
    assert config.credentials.current.authorization == "Bearer abc"
    assert config.credentials.current.refresh_at is None


def test_username_and_password_become_basic_auth(tmp_path):
    user = {"username": "ada", "password": "secret"}
    config = KubeConfig.from_file(kubeconfig(tmp_path / "config", user=user))
    assert config.credentials.current.authorization == "Basic YWRhOnNlY3JldA=="


async def test_requests_go_through_the_proxy_url(tmp_path):
    proxy = RecordingProxy()
    proxy_url = await proxy.start()
    try:
        path = kubeconfig(
            tmp_path / "config",
            server="http://kube.example:6443",
            cluster={"proxy-url": proxy_url},
            user={"token": "abc"},
        )
        config = KubeConfig.from_file(path)
        assert config.proxy == proxy_url
        async with KubeClient(config) as client:
            assert await client.get("/api/v1/namespaces") == {}
        session = (await login(config)).aiohttp_session
        async with session, session.get(f"{config.server}/apis") as response:
            assert response.status == 200
    finally:
        await proxy.stop()
    assert proxy.requests == [
        "GET http://kube.example:6443/api/v1/namespaces HTTP/1.1",
        "GET http://kube.example:6443/apis HTTP/1.1",
    ]


@pytest.mark.parametrize(
    ("cluster", "message"),
    [
        (
            {"proxy-url": "socks5://127.0.0.1:1080"},
            "clusters[test].cluster.proxy-url 'socks5://127.0.0.1:1080': only http:// and https://",
        ),
        (
            {"proxy-url": "http://127.0.0.1:3128", "tls-server-name": "kubernetes"},
            "tls-server-name together with proxy-url is not supported",
        ),
    ],
    ids=["socks-proxy", "proxy-and-tls-server-name"],
)
def test_unsupported_cluster_settings_are_refused(tmp_path, cluster, message):
    path = kubeconfig(tmp_path / "config", server="https://127.0.0.1:6443", cluster=cluster)
    with pytest.raises(KubeConfigError, match=r"kubeconfig .*/config") as error:
        KubeConfig.from_file(path)
    assert message in str(error.value)


@pytest.fixture
async def tls_server(tmp_path):
    """An HTTPS server on 127.0.0.1 whose certificate names only ``kubernetes.test``."""
    cert, key = write_self_signed(tmp_path / "tls", "server", ("kubernetes.test",))
    async with TlsServer(cert, key) as url:
        yield url, cert


async def test_tls_server_name_is_the_name_the_certificate_is_checked_against(tmp_path, tls_server):
    server, ca = tls_server
    cluster = {"certificate-authority": str(ca), "tls-server-name": "kubernetes.test"}
    config = KubeConfig.from_file(kubeconfig(tmp_path / "a", server=server, cluster=cluster))
    assert config.tls_server_name == "kubernetes.test"
    async with KubeClient(config) as client:
        assert await client.get("/version") == {"gitVersion": "v1"}
    session = (await login(config)).aiohttp_session
    async with session, session.get(f"{server}/version") as response:
        assert await response.json() == {"gitVersion": "v1"}
    # Without it the certificate does not match 127.0.0.1: the check is real.
    cluster = {"certificate-authority": str(ca)}
    config = KubeConfig.from_file(kubeconfig(tmp_path / "b", server=server, cluster=cluster))
    async with KubeClient(config) as client:
        with pytest.raises(httpx.TransportError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get("/version")


async def test_impersonation_becomes_impersonate_headers(tmp_path):
    user = {
        "token": "abc",
        "as": "jane",
        "as-uid": "42",
        "as-groups": ["devs", "ops"],
        "as-user-extra": {"scopes.example.com/x%y": ["read", "write"]},
    }
    config = KubeConfig.from_file(kubeconfig(tmp_path / "config", user=user))
    seen: list[httpx.Headers] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        return httpx.Response(200, json={})

    async with KubeClient(config, transport=httpx.MockTransport(answer)) as client:
        await client.create("/api/v1/namespaces", {"metadata": {"name": "x"}})
    headers = seen[0]
    assert headers["Authorization"] == "Bearer abc"
    assert headers["Impersonate-User"] == "jane"
    assert headers["Impersonate-Uid"] == "42"
    assert headers.get_list("Impersonate-Group") == ["devs", "ops"]
    assert headers.get_list("Impersonate-Extra-scopes.example.com%2Fx%25y") == ["read", "write"]
    assert headers["Content-Type"] == "application/json"


def test_impersonating_groups_needs_a_user(tmp_path):
    path = kubeconfig(tmp_path / "config", user={"as-groups": ["devs"]})
    with pytest.raises(KubeConfigError, match=r"users\[test\].user: .* need `as`"):
        KubeConfig.from_file(path)


@pytest.fixture
def in_cluster(tmp_path, monkeypatch):
    """A pod's service-account directory, and the variables the kubelet sets."""
    directory = tmp_path / "serviceaccount"
    directory.mkdir()
    (directory / "token").write_text("pod-token\n")
    (directory / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    (directory / "namespace").write_text("team-a")
    monkeypatch.setattr(config_module, "SERVICE_TOKEN_FILENAME", str(directory / "token"))
    monkeypatch.setattr(config_module, "SERVICE_CERT_FILENAME", str(directory / "ca.crt"))
    monkeypatch.setattr(config_module, "IN_CLUSTER_NAMESPACE_FILE", directory / "namespace")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    return directory


async def test_in_cluster_credentials_follow_the_rotating_token(in_cluster, monkeypatch):
    config = KubeConfig.load()
    assert (config.server, config.namespace) == ("https://10.0.0.1:443", "team-a")
    assert config.ca_file == str(in_cluster / "ca.crt")
    assert config.credentials.current.authorization == "Bearer pod-token"
    (in_cluster / "token").write_text("rotated-token\n")
    monkeypatch.setattr(credentials_module, "REFETCH_INTERVAL", dt.timedelta())
    assert (await config.credentials.renew()).authorization == "Bearer rotated-token"


def test_in_cluster_without_the_service_variables_says_what_is_missing(in_cluster, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT")
    with pytest.raises(KubeConfigError, match=r"in-cluster credentials .*Service host/port"):
        KubeConfig.in_cluster()


def write(path: Path, doc: object) -> Path:
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda d: d / "nowhere",
            r"cannot read kubeconfig .*/nowhere: no such file; pass an existing kubeconfig "
            r"\(--kubeconfig\) or set KUBECONFIG",
        ),
        (
            lambda d: kubeconfig(d / "config", current="prod"),
            r"kubeconfig .*/config: no context named 'prod' \(contexts: test\); choose one "
            r"with `kubectl config use-context NAME`",
        ),
        (
            lambda d: kubeconfig(d / "config", current=None),
            r"kubeconfig .*/config: no current-context; choose one with `kubectl config",
        ),
        (
            lambda d: kubeconfig(d / "config", context={"user": "ghost"}),
            r"context 'test' names user 'ghost', which no file defines; add it under users",
        ),
        (
            lambda d: kubeconfig(
                d / "config",
                server="https://127.0.0.1:6443",
                cluster={"certificate-authority": "ca.pem"},
            ),
            r"kubeconfig .*/config \(context 'test'\): File does not exist: .*/ca.pem",
        ),
        (
            lambda d: write(d / "config", "clusters: [unclosed"),
            r"kubeconfig .*/config is not a valid kubeconfig",
        ),
    ],
    ids=[
        "missing-file",
        "unknown-context",
        "no-current-context",
        "undefined-user",
        "missing-ca-file",
        "not-yaml",
    ],
)
def test_errors_name_the_file_and_the_fix(tmp_path, make, message):
    with pytest.raises(KubeConfigError, match=message):
        KubeConfig.from_file(make(tmp_path))
