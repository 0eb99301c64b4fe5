"""The worker API over TLS: the operator serves a certificate from files, workers verify
it against the CA bundle named by ``SHIFTBOSS_CA_FILE`` (and refuse anything else), or
against the one the operator gives them from its ``--worker-ca-file``."""

from __future__ import annotations

import ssl

import httpx
import pytest
from conftest import apply, job_manifest, pool_manifest, wait_jobs_done, wait_ready_workers

from shiftboss.testing.operator import OperatorProcess
from shiftboss.testing.pki import write_pki, write_self_signed
from shiftboss.testing.processes import wait_until


def test_workers_reach_the_operator_over_tls(cluster, namespace, tmp_path):
    cert, key = write_self_signed(tmp_path / "tls", "operator", ("127.0.0.1", "localhost"))
    log = tmp_path / "operator.log"
    with OperatorProcess(cluster.env(), log, namespaces=[namespace], tls=(cert, key)) as operator:
        assert operator.url.startswith("https://")
        # Plain HTTP to a TLS port gets nowhere; a client without the CA refuses the server.
        with httpx.Client() as plain, pytest.raises(httpx.RemoteProtocolError):
            plain.get(operator.url.replace("https", "http") + "/healthz")
        with httpx.Client() as untrusting, pytest.raises(httpx.ConnectError) as refused:
            untrusting.get(f"{operator.url}/healthz")
        assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value)
        with httpx.Client(verify=ssl.create_default_context(cafile=str(cert))) as trusting:
            assert trusting.get(f"{operator.url}/healthz").status_code == 200

        pool = pool_manifest("demo", replicas=1)
        pool["spec"]["env"].append({"name": "SHIFTBOSS_CA_FILE", "value": str(cert)})
        apply(cluster, namespace, pool, job_manifest("secure", "add", {"a": 2, "b": 3}))
        wait_ready_workers(cluster, namespace, "demo", 1)
        [job] = wait_jobs_done(cluster, namespace, 1, timeout=60)
        assert (job["status"]["phase"], job["status"]["result"]) == ("Succeeded", 5)

        # A worker given no CA file cannot register: it says why and never gets a job.
        wrong = pool_manifest("untrusting", replicas=1)
        apply(cluster, namespace, wrong)
        wait_until(
            lambda: "not trusted" in worker_logs(cluster, namespace, "untrusting"),
            timeout=60,
            what="the untrusting worker to report the certificate it refused",
        )
        assert "set SHIFTBOSS_CA_FILE" in worker_logs(cluster, namespace, "untrusting")
    assert "Traceback" not in log.read_text(errors="replace")


def test_workers_verify_the_operator_with_the_ca_it_gives_them(cluster, namespace, tmp_path):
    """A CA distinct from the serving certificate, as cert-manager issues them: the
    operator serves the chain and hands the CA to its workers (SHIFTBOSS_CA_DATA); the
    pool says nothing about TLS."""
    pki = write_pki(tmp_path / "pki")
    ca, chain = pki.file("ca.crt"), pki.file("chain.crt")
    chain.write_bytes(pki.file("apiserver.crt").read_bytes() + ca.read_bytes())
    log = tmp_path / "operator.log"
    with OperatorProcess(
        cluster.env(),
        log,
        namespaces=[namespace],
        tls=(chain, pki.file("apiserver.key")),
        extra_args=["--worker-ca-file", str(ca)],
    ):
        apply(cluster, namespace, pool_manifest("demo", replicas=1))
        apply(cluster, namespace, job_manifest("given-ca", "add", {"a": 4, "b": 5}))
        [job] = wait_jobs_done(cluster, namespace, 1, timeout=60)
        assert (job["status"]["phase"], job["status"]["result"]) == ("Succeeded", 9)
        [pod] = cluster.get_json("-n", namespace, "pods")["items"]
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["SHIFTBOSS_CA_DATA"] == ca.read_text()
    assert "SHIFTBOSS_CA_FILE" not in env
    assert env["SHIFTBOSS_OPERATOR_URL"].startswith("https://")
    assert "Traceback" not in log.read_text(errors="replace")


def worker_logs(cluster, namespace: str, pool: str) -> str:
    result = cluster.kubectl(
        "-n", namespace, "logs", "-l", f"shiftboss.io/pool={pool}", "--tail=50", check=False
    )
    return result.stdout + result.stderr
