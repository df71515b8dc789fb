"""`python -m stackrun up|preview|refresh|destroy [flags]`: the Pulumi CLI verbs, run by the real engine."""

from __future__ import annotations

from stackrun.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
