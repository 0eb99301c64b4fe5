"""Fault injection for tests: break the wire between two parts on purpose.

``FaultProxy(upstream)`` is an HTTP/1.1 reverse proxy on 127.0.0.1 (plain or TLS on
either side) that runs in a background thread. Rules, switched on and off while it
runs, match requests by method and path/query regex and count what they hit:

==============  ===================================================================
``drop_reply``  forward; the upstream acts and answers; the client gets a closed
                connection instead ("the write landed, the reply was lost")
``delay``       wait before forwarding, or (``before="reply"``) before answering
``hang``        hold the request until the rule is removed or the client gives up
``respond``     answer at once without forwarding (429 + Retry-After, 500, 503...)
``refuse``      reset new connections, and open ones at their next request
==============  ===================================================================

Each takes ``times=N`` to fire at most N times. Streaming answers (Kubernetes
watches) pass through unbuffered.

``ApiServerProxy(cluster)`` puts one in front of a ``LocalCluster``'s API server and
writes a kubeconfig that points at it, for the operator's own connection; the
cluster's ``freeze_apiserver()`` / ``frozen_apiserver()`` (SIGSTOP) and
``ManagedProcess.freeze()`` stall a whole process instead.

    from shiftboss.testing.faults import ApiServerProxy, FaultProxy, kube_status

    with ApiServerProxy(cluster) as api, OperatorProcess(api.env(), log) as op:
        # The operator's status writes are throttled for a while; kubectl is not.
        with api.respond(
            429,
            kube_status(429, "TooManyRequests", "throttled"),
            headers={"Retry-After": "1"},
            method="PATCH",
            path=r"/jobs/[^/]+/status$",
        ) as rule:
            rule.wait_hits(3, timeout=30)
        # A worker whose claim is written but whose answer is lost, once.
        with FaultProxy(op.url) as wire:
            wire.drop_reply(method="POST", path=r"/claim$", times=1)
            start_worker(operator_url=wire.url)

From async code, use ``async with`` and ``await asyncio.to_thread(rule.wait_hits)``.
"""

from shiftboss.testing.faults.apiserver import ApiServerProxy, kube_status
from shiftboss.testing.faults.proxy import FaultProxy
from shiftboss.testing.faults.rules import Rule

__all__ = ["ApiServerProxy", "FaultProxy", "Rule", "kube_status"]
