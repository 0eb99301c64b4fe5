"""The fault-injection harness on the real control plane: the API-server proxy (kubectl,
a 429 rule, a watch streaming through it, an operator launched with its environment), a
frozen API server, and the API server's answers that the in-memory FakeJobStore
imitates for a Job deleted and created again."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from shiftboss.api.job import JobStatus
from shiftboss.jobs.store import JobStore, StaleJob
from shiftboss.kube.client import RETRIES_ON_429, ApiError, KubeClient, Resource
from shiftboss.kube.config import KubeConfig
from shiftboss.testing.cluster import ExistingCluster, LocalCluster
from shiftboss.testing.faults import ApiServerProxy, kube_status
from shiftboss.testing.operator import OperatorProcess

CONFIGMAPS = Resource("", "v1", "configmaps")
TIMEOUT = 20.0  # bound on every wait for an event


@pytest.fixture
def local(cluster: LocalCluster | ExistingCluster) -> LocalCluster:
    if not isinstance(cluster, LocalCluster):
        pytest.skip("needs the LocalCluster: the proxy uses its CA, freezing its process")
    return cluster


@pytest.fixture
def api(local: LocalCluster) -> Iterator[ApiServerProxy]:
    with ApiServerProxy(local) as proxy:
        yield proxy


@pytest.fixture
async def proxied(api: ApiServerProxy) -> AsyncIterator[KubeClient]:
    """The project's own client, configured from the proxy's kubeconfig."""
    async with KubeClient(KubeConfig.from_file(api.kubeconfig), timeout=TIMEOUT) as client:
        yield client


def kubectl_via(api: ApiServerProxy, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [api.cluster.kubectl_binary(), f"--kubeconfig={api.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )


def admin_tls(cluster: LocalCluster) -> ssl.SSLContext:
    assert cluster.pki is not None
    ctx = ssl.create_default_context(cafile=str(cluster.pki.file("ca.crt")))
    ctx.load_cert_chain(str(cluster.pki.file("admin.crt")), str(cluster.pki.file("admin.key")))
    return ctx


def test_kubectl_works_through_the_api_server_proxy(api: ApiServerProxy, namespace: str) -> None:
    seen = api.delay(0, path=f"^/api/v1/namespaces/{namespace}/configmaps")

    kubectl_via(api, "-n", namespace, "create", "configmap", "via-proxy", "--from-literal=a=b")
    got = json.loads(
        kubectl_via(api, "-n", namespace, "get", "configmap", "via-proxy", "-o", "json").stdout
    )

    assert got["data"] == {"a": "b"}
    assert seen.hits >= 2  # both went through the proxy
    direct = api.cluster.get_json("-n", namespace, "configmap", "via-proxy")
    assert direct["metadata"]["uid"] == got["metadata"]["uid"]


async def test_a_429_rule_throttles_requests_through_the_proxy_while_direct_ones_work(
    api: ApiServerProxy, proxied: KubeClient, namespace: str
) -> None:
    path = CONFIGMAPS.path(namespace)
    # The client resends a 429 after its Retry-After: one refusal costs only a delay...
    once = api.respond(
        429,
        kube_status(429, "TooManyRequests", "throttled by the test"),
        headers={"Retry-After": "0"},
        method="GET",
        path=f"^{path}$",
        times=1,
    )
    assert (await proxied.get(path))["kind"] == "ConfigMapList"
    assert once.hits == 1
    # ...and a refusal that never stops is raised once the client has given up.
    rule = api.respond(
        429,
        kube_status(429, "TooManyRequests", "throttled by the test"),
        headers={"Retry-After": "0"},
        method="GET",
        path=f"^{path}$",
        times=RETRIES_ON_429 + 1,
    )

    with pytest.raises(ApiError) as throttled:
        await proxied.get(path)
    direct = await asyncio.to_thread(api.cluster.kubectl, "-n", namespace, "get", "configmaps")
    after = await proxied.get(path)

    assert (throttled.value.status, throttled.value.reason) == (429, "TooManyRequests")
    assert throttled.value.message == "throttled by the test"
    assert direct.returncode == 0
    assert after["kind"] == "ConfigMapList"
    assert rule.hits == RETRIES_ON_429 + 1


async def test_a_watch_streams_through_the_proxy_event_by_event(
    api: ApiServerProxy, proxied: KubeClient, namespace: str
) -> None:
    path = CONFIGMAPS.path(namespace)
    watches = api.delay(0, path=f"^{path}$", query="watch=true")
    version = (await proxied.get(path))["metadata"]["resourceVersion"]
    watch = proxied.watch(path, resource_version=version, timeout_seconds=60)
    events = cast(AsyncGenerator[dict[str, Any], None], watch)  # closed below, not left to GC

    async def create(name: str) -> None:
        await asyncio.to_thread(api.cluster.kubectl, "-n", namespace, "create", "configmap", name)

    async def next_added() -> str:
        while True:
            event: dict[str, Any] = await asyncio.wait_for(anext(events), TIMEOUT)
            if event["type"] == "ADDED":
                return str(event["object"]["metadata"]["name"])

    try:
        await create("first")
        first = await next_added()
        # The stream is still open: the second event must arrive through it too.
        await create("second")
        second = await next_added()
    finally:
        await events.aclose()

    assert (first, second) == ("first", "second")
    assert watches.hits == 1


def test_an_operator_given_the_proxys_environment_talks_through_the_proxy(
    api: ApiServerProxy, namespace: str, tmp_path: Path
) -> None:
    # Kopf's watch of WorkerPools: the operator is through its start-up and talks to the
    # API server the way it will from then on.
    watches = api.delay(0, path="/workerpools$", query="watch=true")
    log = tmp_path / "operator.log"

    with OperatorProcess(api.env(), log, namespaces=[namespace]):
        watches.wait_hits(1, timeout=TIMEOUT)

    assert "Traceback" not in log.read_text(errors="replace")


def test_a_frozen_api_server_times_requests_out_until_it_is_thawed(
    local: LocalCluster, api: ApiServerProxy
) -> None:
    tls = admin_tls(local)

    with local.frozen_apiserver():
        with pytest.raises(httpx.TimeoutException):
            httpx.get(f"{local.server}/readyz", verify=tls, timeout=2)
        with pytest.raises(httpx.TimeoutException):  # through the proxy: held just the same
            httpx.get(f"{api.url}/readyz", verify=tls, timeout=2)

    assert httpx.get(f"{local.server}/readyz", verify=tls, timeout=TIMEOUT).status_code == 200
    assert httpx.get(f"{api.url}/readyz", verify=tls, timeout=TIMEOUT).status_code == 200


async def test_the_api_server_refuses_the_old_uids_write_and_delete_of_a_recreated_job(
    cluster: LocalCluster | ExistingCluster, kube: KubeClient, namespace: str
) -> None:
    """What ``FakeJobStore.recreate`` imitates: a stale write is a 409 (StaleJob), and a
    delete through the old uid leaves the new Job alone."""
    manifest = json.dumps(
        {
            "apiVersion": "shiftboss.io/v1alpha1",
            "kind": "Job",
            "metadata": {"name": "again"},
            "spec": {"pool": "p", "skill": "s", "params": {}},
        }
    )
    store = JobStore(kube)

    def create() -> None:
        cluster.kubectl("-n", namespace, "create", "-f", "-", input=manifest)

    await asyncio.to_thread(create)
    old = await store.read(namespace, "again")
    await asyncio.to_thread(cluster.kubectl, "-n", namespace, "delete", "job.shiftboss.io", "again")
    await asyncio.to_thread(create)
    status = JobStatus.model_validate({"phase": "Queued"})

    with pytest.raises(StaleJob):
        await store.write_status(old, status)
    await store.delete(old)

    new = await store.read(namespace, "again")
    assert new.uid != old.uid
    assert new.status is None or new.status.phase is None
