"""``shiftboss dev``: the job author's inner loop. A local control plane, the operator
and a WorkerPool running the author's app from the current directory, until Ctrl-C.

- ``app``: ``--app module:attribute`` checked, and the app imported once to list its skills
- ``session``: the cluster, the operator and the pool, started and stopped by handle
- ``instructions``: what to paste in another shell to submit to the pool
- ``report``: progress on the terminal (``rich`` when present, plain lines otherwise)
"""
