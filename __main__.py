"""The environment of the selected stack: every host and every agent in `stacks/Pulumi.<stack>.yaml`.

Run it with `make up` (the `local` stack against the simulated hosts), `pulumi up --stack <name>`
where the full Pulumi CLI is installed, or `python -m stackrun up --stack <name>`. The whole
configuration is validated before any resource is declared (components/stack).
"""

from __future__ import annotations

from pathlib import Path

import pulumi

from components import environment, stack

try:
    estate = stack.load(Path(__file__).resolve().parent)
except stack.ConfigError as error:
    # The problems once, as an error diagnostic; the RunError that stops the program (no traceback)
    # carries only the outcome, as the Automation API's server prints it a second time.
    pulumi.log.error(str(error))
    raise pulumi.RunError("the stack configuration is invalid: no resource was declared, no host contacted") from None
pulumi.export("agents", environment.deploy(estate))
