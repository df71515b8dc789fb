#!/usr/bin/env bash
# ci/deploy.sh STACK: `up --refresh` of STACK (the state is read from the hosts first, so a drift
# found by the nightly check is repaired too). The CLI's exit code is this script's.
# The backend and passphrase come from PULUMI_BACKEND_URL and PULUMI_CONFIG_PASSPHRASE (CI secrets).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

stack="${1:?usage: ci/deploy.sh STACK}"
log "up --refresh of stack $stack"
stackrun up --stack "$stack" --refresh
