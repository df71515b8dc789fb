#!/usr/bin/env bash
# Provides the pinned Pulumi CLI and prints the directory that holds it and the Python
# plugin scripts the engine needs (pulumi-resource-pulumi-python for dynamic providers,
# pulumi-language-python-exec).
#
# A `pulumi` on PATH is used when its version matches. Otherwise the CLI is built once from
# the Go module proxy into a cache outside the repository (the Pulumi website cannot be
# reached from our build machines). A CLI whose version was checked once is not asked again
# while the binary is the same file (size, mtime, inode, path): `pulumi version` costs about
# 0.4 s, paid by every stackrun verb otherwise (bench/RESULTS.md, issue 9).
set -euo pipefail

VERSION="v3.259.0"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${USERCUBE_IAC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/usercube-iac}/pulumi-${VERSION}"
log() { echo "ensure-pulumi: $*" >&2; }

# What identifies one build of a file: GNU stat, then BSD stat; empty when neither works
# (then the version is checked every time, as before).
identity() { stat -L -c '%s %Y %i' "$1" 2>/dev/null || stat -L -f '%z %m %i' "$1" 2>/dev/null || true; }
stamp_file="$(dirname "$cache")/verified-pulumi-${VERSION}"

# Whether the CLI at $1 reports $VERSION: from the stamp when the binary is the one last
# checked, otherwise by asking it (and then stamping it).
has_version() {
  local cli="$1" id
  id="$(identity "$cli")"
  if [ -n "$id" ] && grep -qxF -- "$cli $id" "$stamp_file" 2>/dev/null; then
    return 0
  fi
  [ "$("$cli" version 2>/dev/null)" = "$VERSION" ] || return 1
  if [ -n "$id" ] && mkdir -p "$(dirname "$stamp_file")" 2>/dev/null; then
    # One line per CLI path; written whole then renamed, so a reader never sees half a stamp.
    { grep -vF -- "$cli " "$stamp_file" 2>/dev/null || true; printf '%s\n' "$cli $id"; } >"$stamp_file.$$" 2>/dev/null \
      && mv -f "$stamp_file.$$" "$stamp_file" 2>/dev/null || rm -f "$stamp_file.$$" 2>/dev/null || true
  fi
  return 0
}

install_plugin_scripts() {
  local dest="$1" moddir
  moddir="$(cd "$here/pulumi" && go mod download -json github.com/pulumi/pulumi/sdk/v3@${VERSION} | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  for script in python/dist/pulumi-resource-pulumi-python python/cmd/pulumi-language-python-exec; do
    install -m 0755 "$moddir/$script" "$dest/$(basename "$script")"
  done
}

if command -v pulumi >/dev/null 2>&1 && has_version "$(command -v pulumi)"; then
  dir="$(dirname "$(command -v pulumi)")"
  if [ -x "$dir/pulumi-resource-pulumi-python" ]; then
    echo "$dir"
    exit 0
  fi
  log "pulumi ${VERSION} on PATH lacks the Python plugin scripts; using the cache instead"
fi

if [ -x "$cache/pulumi" ] && has_version "$cache/pulumi" \
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
