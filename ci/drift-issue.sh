#!/usr/bin/env bash
# ci/drift-issue.sh STACK: the nightly drift check of STACK, kept as ONE open issue labelled drift:STACK.
#
# Drift (report exit 7) or a failed check (exit 1): the open issue's body is replaced by the report
# (the issue is opened if there is none). No drift (exit 0): the open issue, if any, is closed with
# a comment. Run it after `ci/deploy.sh` too, so a repaired drift closes its issue at once.
# Needs GITHUB_TOKEN, GITHUB_REPOSITORY; GITHUB_API_URL defaults to https://api.github.com.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

stack="${1:?usage: ci/drift-issue.sh STACK}"
need GITHUB_TOKEN
need GITHUB_REPOSITORY
base="${GITHUB_API_URL:-https://api.github.com}/repos/$GITHUB_REPOSITORY"
label="drift:$stack"
title="Drift in stack $stack"

code=0
report "$stack" drift "$WORK/report.md" || code=$?

api Authorization GITHUB_TOKEN GET "$base/issues?state=open&labels=drift%3A$stack&per_page=1" >"$WORK/issues.json"
number="$(json first-number <"$WORK/issues.json")"

if [ "$code" -eq 0 ]; then
  if [ -n "$number" ]; then
    printf 'No drift any more in stack `%s`: closing.\n' "$stack" >"$WORK/closing.md"
    json object "body=@$WORK/closing.md" >"$WORK/comment.json"
    api Authorization GITHUB_TOKEN POST "$base/issues/$number/comments" "$WORK/comment.json" >/dev/null
    json object state=closed state_reason=completed >"$WORK/close.json"
    api Authorization GITHUB_TOKEN PATCH "$base/issues/$number" "$WORK/close.json" >/dev/null
    log "stack $stack: no drift; issue #$number closed"
  else
    log "stack $stack: no drift"
  fi
  exit 0
fi

json object "title=$title" "body=@$WORK/report.md" >"$WORK/issue.json"
if [ -n "$number" ]; then
  api Authorization GITHUB_TOKEN PATCH "$base/issues/$number" "$WORK/issue.json" >/dev/null
  log "stack $stack: issue #$number updated (report exit $code)"
else
  json object "name=$label" color=d93f0b "description=Nightly drift check of stack $stack" >"$WORK/label.json"
  api Authorization GITHUB_TOKEN POST "$base/labels" "$WORK/label.json" >/dev/null 2>&1 || true # exists already
  json object "title=$title" "body=@$WORK/report.md" "labels:=[\"$label\"]" >"$WORK/issue.json"
  api Authorization GITHUB_TOKEN POST "$base/issues" "$WORK/issue.json" >/dev/null
  log "stack $stack: issue opened (report exit $code)"
fi
[ "$code" -ne 1 ] || die "the drift check of $stack failed; the issue carries the error"
