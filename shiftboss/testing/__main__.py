"""``python -m shiftboss.testing up``: see ``shiftboss.testing.up``."""

import sys

from shiftboss.testing.up import main

sys.exit(main())
