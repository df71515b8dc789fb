#!/usr/bin/env bash
# Provides the pinned actionlint (the GitHub Actions workflow linter) and prints its path.
#
# An `actionlint` on PATH is used when its version matches. Otherwise it is built once with
# `go install` from the Go module proxy into a cache outside the repository, next to the
# Pulumi CLI (tools/ensure-pulumi.sh); later runs cost a version check.
set -euo pipefail

VERSION="v1.7.12"
cache="${USERCUBE_IAC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/usercube-iac}/actionlint-${VERSION}"
log() { echo "ensure-actionlint: $*" >&2; }
matches() { "$1" -version 2>/dev/null | head -n1 | grep -qx "${VERSION#v}"; }

if command -v actionlint >/dev/null 2>&1 && matches "$(command -v actionlint)"; then
  command -v actionlint
  exit 0
fi
if [ -x "$cache/actionlint" ] && matches "$cache/actionlint"; then
  echo "$cache/actionlint"
  exit 0
fi

command -v go >/dev/null 2>&1 || { log "Go is needed to build actionlint (none on PATH)"; exit 1; }
log "building actionlint ${VERSION} from the Go module proxy into $cache (once)"
mkdir -p "$cache"
tmp="$(mktemp -d "$cache/build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
GOBIN="$tmp" GOFLAGS=-mod=mod go install -trimpath \
  -ldflags "-X github.com/rhysd/actionlint.version=${VERSION#v}" \
  "github.com/rhysd/actionlint/cmd/actionlint@${VERSION}"
mv "$tmp/actionlint" "$cache/actionlint"
matches "$cache/actionlint" || { log "built actionlint does not report ${VERSION}"; exit 1; }
echo "$cache/actionlint"
