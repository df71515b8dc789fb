"""Runs this project's Pulumi program under the real Pulumi engine (CLI v3.259.0).

Why not plain ``pulumi up``: the engine starts a separate *language host* plugin
(``pulumi-language-python``) to run a Python program. On a normal workstation that plugin
ships with the Pulumi CLI download; on our build machines the Pulumi website is not
reachable and that plugin's Go module is not served by the Go module proxy, so it cannot be
built here. The Automation API serves the language runtime from inside this Python process
instead and drives the same ``pulumi`` CLI binary (``up``, ``preview --diff``, ``refresh``,
``destroy``) against the same project (``Pulumi.yaml``, ``stacks/``). Where the full Pulumi
distribution is installed, ``pulumi up`` in the repository root runs the same ``__main__.py``.
"""
