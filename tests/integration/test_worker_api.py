from __future__ import annotations

import json
import time

import httpx

from conftest import apply, get, job_manifest, pool_manifest
from shiftboss.testing.processes import wait_until


def tok(cluster, ns, sa="default", aud="shiftboss"):
    return cluster.kubectl("-n", ns, "create", "token", sa, "--audience", aud).stdout.strip()


def test_probe(cluster, namespace, operator):
    ns = namespace
    cluster.kubectl("-n", ns, "create", "serviceaccount", "other")
    apply(
        cluster,
        ns,
        pool_manifest("demo", replicas=0),
        pool_manifest("theirs", replicas=0, serviceAccountName="other"),
    )
    t = tok(cluster, ns)
    c = httpx.Client(base_url=operator.url, timeout=30)
    H = {"Authorization": f"Bearer {t}"}
    reg = {
        "pool": "demo",
        "worker_id": "fake-1",
        "skills": [{"name": "echo", "input_schema": {"type": "object"}}],
    }
    time.sleep(2)
    print(c.post("/v1/workers/register", json=reg, headers=H).text)
    apply(cluster, ns, job_manifest("done", "echo", {}))
    r = c.post("/v1/workers/fake-1/claim", json={"wait_seconds": 10}, headers=H)
    print(r.text)
    aid = r.json()["assignments"][0]["attempt_id"]
    print(c.post(f"/v1/attempts/{aid}/complete", json={"result": 1}, headers=H).text)
    apply(cluster, ns, job_manifest("run", "echo", {}))
    r = c.post("/v1/workers/fake-1/claim", json={"wait_seconds": 10}, headers=H)
    rid = r.json()["assignments"][0]["attempt_id"]
    deep = b'{"result": ' + b"[" * 10000 + b"]" * 10000 + b"}"
    deep_reg = b"[" * 10000 + b"]" * 10000
    cases = [
        ("nohdr", "POST", "/v1/workers/register", dict(json=reg)),
        (
            "unknownpool",
            "POST",
            "/v1/workers/register",
            dict(json={**reg, "pool": "nope"}, headers=H),
        ),
        ("theirs", "POST", "/v1/workers/register", dict(json={**reg, "pool": "theirs"}, headers=H)),
        (
            "badjson",
            "POST",
            "/v1/workers/register",
            dict(content=b"{nope", headers={**H, "content-type": "application/json"}),
        ),
        (
            "empty",
            "POST",
            "/v1/workers/register",
            dict(content=b"", headers={**H, "content-type": "application/json"}),
        ),
        (
            "ctype",
            "POST",
            "/v1/workers/register",
            dict(content=json.dumps(reg), headers={**H, "content-type": "text/plain"}),
        ),
        ("array", "POST", "/v1/workers/register", dict(json=[reg], headers=H)),
        (
            "huge",
            "POST",
            "/v1/workers/register",
            dict(json={**reg, "version": "x" * (2 << 20)}, headers=H),
        ),
        (
            "deep-reg",
            "POST",
            "/v1/workers/register",
            dict(content=deep_reg, headers={**H, "content-type": "application/json"}),
        ),
        (
            "deep-complete",
            "POST",
            f"/v1/attempts/{rid}/complete",
            dict(content=deep, headers={**H, "content-type": "application/json"}),
        ),
        (
            "deep500-complete",
            "POST",
            f"/v1/attempts/{rid}/complete",
            dict(
                content=b'{"result": ' + b"[" * 500 + b"]" * 500 + b"}",
                headers={**H, "content-type": "application/json"},
            ),
        ),
        (
            "hugeauth",
            "POST",
            "/v1/workers/register",
            dict(json=reg, headers={"Authorization": "Bearer " + "a" * 65536}),
        ),
        (
            "auth12k",
            "POST",
            "/v1/workers/register",
            dict(json=reg, headers={"Authorization": "Bearer " + "a" * 12000}),
        ),
        (
            "auth-nonascii",
            "POST",
            "/v1/workers/register",
            dict(json=reg, headers={"Authorization": b"Bearer \xff\xfe"}),
        ),
        (
            "auth-bearer-only",
            "POST",
            "/v1/workers/register",
            dict(json=reg, headers={"Authorization": "Bearer  "}),
        ),
        ("get-post", "GET", "/v1/workers/register", dict(headers=H)),
        ("unknown", "GET", "/v1/nope", dict(headers=H)),
        (
            "notattempt",
            "POST",
            "/v1/attempts/not-an-attempt/complete",
            dict(json={"result": 1}, headers=H),
        ),
        (
            "nojob",
            "POST",
            "/v1/attempts/00000000-0000-0000-0000-000000000000.1/complete",
            dict(json={"result": 1}, headers=H),
        ),
        ("notcurrent", "POST", f"/v1/attempts/{aid}/complete", dict(json={"result": 1}, headers=H)),
        ("percent", "POST", f"/v1/attempts/{rid}/progress", dict(json={"percent": 101}, headers=H)),
        ("traversal", "POST", "/v1/workers/..%2F..%2Fetc/claim", dict(json={}, headers=H)),
        ("traversal2", "POST", "/v1/workers/../workers/register", dict(json={}, headers=H)),
        ("unicode", "POST", "/v1/workers/%C3%A9%E2%98%83/claim", dict(json={}, headers=H)),
        ("nul-path", "POST", "/v1/workers/a%00b/claim", dict(json={}, headers=H)),
        (
            "rawnul",
            "POST",
            "/v1/workers/register",
            dict(
                content=b'{"pool": "de\x00mo"}', headers={**H, "content-type": "application/json"}
            ),
        ),
        (
            "badutf8",
            "POST",
            "/v1/workers/register",
            dict(content=b'{"pool": "\xff"}', headers={**H, "content-type": "application/json"}),
        ),
        (
            "surrogate",
            "POST",
            "/v1/workers/register",
            dict(content=b'{"pool": "\\ud800"}', headers={**H, "content-type": "application/json"}),
        ),
        (
            "nan",
            "POST",
            "/v1/workers/fake-1/claim",
            dict(
                content=b'{"wait_seconds": NaN}', headers={**H, "content-type": "application/json"}
            ),
        ),
        (
            "inf",
            "POST",
            "/v1/workers/fake-1/claim",
            dict(
                content=b'{"wait_seconds": Infinity}',
                headers={**H, "content-type": "application/json"},
            ),
        ),
        (
            "bigint",
            "POST",
            "/v1/workers/fake-1/claim",
            dict(
                content=b'{"max_attempts": ' + b"9" * 5000 + b"}",
                headers={**H, "content-type": "application/json"},
            ),
        ),
        (
            "nan-result",
            "POST",
            f"/v1/attempts/{rid}/complete",
            dict(content=b'{"result": NaN}', headers={**H, "content-type": "application/json"}),
        ),
    ]
    for name, m, p, kw in cases:
        try:
            r = c.request(m, p, **kw)
            print(name, r.status_code, r.headers.get("content-type"), r.text[:300])
        except Exception as e:
            print(name, "EXC", repr(e)[:300])
    print(json.dumps(get(cluster, ns, "jobs.shiftboss.io", "run")["status"])[:1000])
    print(open(operator.process.log).read()[-3000:] if hasattr(operator.process, "log") else "")
