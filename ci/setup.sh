#!/usr/bin/env bash
# ci/setup.sh: the project's virtualenv (pinned versions, pyproject.toml) and the pinned Pulumi CLI
# v3.259.0 (tools/ensure-pulumi.sh: a matching `pulumi` on PATH, or built once from the Go module
# proxy into ~/.cache/usercube-iac/, which the workflows cache).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
make .venv/.installed
tools/ensure-pulumi.sh >/dev/null
.venv/bin/python -m stackrun --help >/dev/null
