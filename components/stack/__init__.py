"""The stack configuration: every host and agent of one environment, validated before any resource exists.

``load`` reads ``usercube-agents:hosts`` and ``usercube-agents:agents`` from the stack, checks them
against the schema (``schema``), checks which values are encrypted in the stack file (``secrets``)
and checks the estate as a whole (``estate``). Every error names the key path as a user writes it
with ``pulumi config set --path`` (``agents[1].hostName``) and the fix.
"""

from components.stack.errors import ConfigError
from components.stack.load import Estate, load, load_from

__all__ = ["ConfigError", "Estate", "load", "load_from"]
