#!/usr/bin/env bash
# Provides the pinned Pulumi CLI and prints the directory that holds it and the Python
# plugin scripts the engine needs (pulumi-resource-pulumi-python for dynamic providers,
# pulumi-language-python-exec).
#
# A `pulumi` on PATH is used when its version matches. Otherwise the CLI is built once from
# the Go module proxy into a cache outside the repository (the Pulumi website cannot be
# reached from our build machines); later runs cost a version check.
set -euo pipefail

VERSION="v3.259.0"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${USERCUBE_IAC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/usercube-iac}/pulumi-${VERSION}"
log() { echo "ensure-pulumi: $*" >&2; }

install_plugin_scripts() {
  local dest="$1" moddir
  moddir="$(cd "$here/pulumi" && go mod download -json github.com/pulumi/pulumi/sdk/v3@${VERSION} | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  for script in python/dist/pulumi-resource-pulumi-python python/cmd/pulumi-language-python-exec; do
    install -m 0755 "$moddir/$script" "$dest/$(basename "$script")"
  done
}

if command -v pulumi >/dev/null 2>&1 && [ "$(pulumi version 2>/dev/null)" = "$VERSION" ]; then
  dir="$(dirname "$(command -v pulumi)")"
  if [ -x "$dir/pulumi-resource-pulumi-python" ]; then
    echo "$dir"
    exit 0
  fi
  log "pulumi ${VERSION} on PATH lacks the Python plugin scripts; using the cache instead"
fi

if [ -x "$cache/pulumi" ] && [ "$("$cache/pulumi" version 2>/dev/null)" = "$VERSION" ] \
   && [ -x "$cache/pulumi-resource-pulumi-python" ]; then
  echo "$cache"
  exit 0
fi

command -v go >/dev/null 2>&1 || { log "Go >= 1.25.11 is needed to build the Pulumi CLI (none on PATH)"; exit 1; }
log "building the Pulumi CLI ${VERSION} from the Go module proxy into $cache (once; takes several minutes)"
mkdir -p "$cache"
tmp="$cache/pulumi.tmp.$$"
(cd "$here/pulumi" && GOFLAGS=-mod=mod go build -tags osusergo,grpcnotrace -trimpath \
   -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=${VERSION}" \
   -o "$tmp" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
mv "$tmp" "$cache/pulumi"
install_plugin_scripts "$cache"
[ "$("$cache/pulumi" version)" = "$VERSION" ] || { log "built CLI does not report ${VERSION}"; exit 1; }
echo "$cache"
