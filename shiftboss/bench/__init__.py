"""`make bench` and `make bench-scale`: Shiftboss measured on a local control plane
(etcd, kube-apiserver, controllers, the process node) with the operator as a child
process, every workload bounded in count and time, one table printed and the figures
written as JSON (``bench-results/bench.json``, ``bench-results/bench-scale.json``) with
the machine, versions and settings beside them.

``python -m shiftboss.bench`` (``make bench``), in order:

1. the ceiling: Job creates/s and conditional status merge-patches/s from one client
   at several concurrencies, in a namespace no operator serves, and the job rate that
   bounds for 2 and 3 writes per job (``ceiling``);
2. a warm pool; sequential jobs on it while idle, then bursts of no-op jobs: jobs/s,
   create→running and create→done p50/p95/p99, requests per job from the API
   server's ``apiserver_request_total`` (``bursts``, ``apiserver_metrics``);
3. the same work as batch/v1 Jobs, a pod each (``peer``);
4. operator RSS with the finished Jobs present, and restart → first dispatch with them
   (``scale``);
5. sustained load at a fraction of the burst rate, with TTL on (``sustained``);
6. optionally a py-spy profile of the operator during the largest burst (``profile``).

``python -m shiftboss.bench scale`` (``make bench-scale``): 100,000 queued Jobs for a
pool without workers, operator RSS with them, restart → first dispatch, and the claim
round trip with that queue.

Sizes, from the environment (defaults in brackets):

=====================================  ===================================================
``SHIFTBOSS_BENCH_WORKERS`` [4]          worker pods in the warm pool
``SHIFTBOSS_BENCH_CONCURRENCY`` [8]      jobs per worker at once
``SHIFTBOSS_BENCH_IDLE`` [20]            sequential jobs on the idle pool
``SHIFTBOSS_BENCH_BURSTS`` [1000,10000]  burst sizes, comma-separated
``SHIFTBOSS_BENCH_CREATORS`` [32]        creates in flight (bursts, sustained, scale)
``SHIFTBOSS_BENCH_CEILING_OPS`` [600]    creates (then patches) per ceiling level
``SHIFTBOSS_BENCH_CEILING_LEVELS``       requests in flight per level [8,32,64]
``SHIFTBOSS_BENCH_PEER`` [50]            batch/v1 Jobs in the peer burst
``SHIFTBOSS_BENCH_RESTART_QUEUED`` [20]  jobs created while the operator is down
``SHIFTBOSS_BENCH_SUSTAINED_SECONDS``    length of the sustained load [300]; 0 skips it
``SHIFTBOSS_BENCH_SUSTAINED_FRACTION``   its rate, a fraction of the largest burst's [0.7]
``SHIFTBOSS_BENCH_PROFILE`` [0]          1: py-spy the operator during the largest burst
``SHIFTBOSS_BENCH_SCALE_QUEUED``         queued Jobs of ``bench-scale`` [100000]
``SHIFTBOSS_BENCH_SCALE_CLAIMS`` [50]    claims timed with that queue
=====================================  ===================================================

Latencies are measured from just before each create to when the bench's watch saw the
phase, so they include the API server and the bench's own reading of the watch; on a
two-core machine the bench's creator and watch compete with the operator for CPU.
"""
