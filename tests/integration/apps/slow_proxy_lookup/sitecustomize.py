"""Loaded by Python at start-up when this folder is on PYTHONPATH (tests only).

aiohttp looks up the environment's proxy in a thread on every request, after it checked
that the session is open and before it uses the session's connector. Kopf closes its
session when the operator stops; a request in that gap used to crash the operator at exit.
Slowing the lookup makes the gap wide enough to stop in on purpose.
"""

import time

import aiohttp.client

_lookup = aiohttp.client.get_env_proxy_for_url


def _slow_lookup(url):  # type: ignore[no-untyped-def]
    time.sleep(0.5)
    return _lookup(url)


aiohttp.client.get_env_proxy_for_url = _slow_lookup
