"""The startup hook the process node puts first on every container's ``PYTHONPATH``.

It holds only ``sitecustomize.py`` (stdlib only: it runs inside any pod's Python), which
gives Python processes the cluster DNS names of Services; see ``node.dns``.
"""

from pathlib import Path

#: The directory to put on ``PYTHONPATH``.
HOOK_DIR = Path(__file__).resolve().parent
