"""``python -m devhost``: the SIMULATED Windows host (devhost) — not Windows."""

import sys

from devhost.cli import main

sys.exit(main())
