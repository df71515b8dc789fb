"""devhost: a SIMULATED Windows host for tests and local deployments. It is not Windows.

It speaks real WS-Management over HTTP(S) with real authentication, and runs the project's
PowerShell operation scripts by executing a Python model of each operation against Windows
state kept on disk (``<state>/C/`` stands for ``C:\\``). A command or script it does not model
fails loudly with a non-zero exit code; it never answers with a made-up success.
"""
