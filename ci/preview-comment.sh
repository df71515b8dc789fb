#!/usr/bin/env bash
# ci/preview-comment.sh STACK: preview STACK and keep ONE pull-request comment for it, edited in place.
#
# The comment is found by its hidden marker `<!-- usercube-preview:STACK -->`; it is written on
# every run: changes, no changes, or the error when the preview fails (then this script exits 1,
# after posting). Needs GITHUB_TOKEN, GITHUB_REPOSITORY, PR_NUMBER; GITHUB_API_URL defaults to
# https://api.github.com. The backend and passphrase come from PULUMI_BACKEND_URL and
# PULUMI_CONFIG_PASSPHRASE (CI secrets).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

stack="${1:?usage: ci/preview-comment.sh STACK}"
need GITHUB_TOKEN
need GITHUB_REPOSITORY
need PR_NUMBER
base="${GITHUB_API_URL:-https://api.github.com}/repos/$GITHUB_REPOSITORY"
marker="<!-- usercube-preview:$stack -->"

code=0
report "$stack" preview "$WORK/report.md" || code=$?
{ echo "$marker"; cat "$WORK/report.md"; } >"$WORK/comment.md"
json object "body=@$WORK/comment.md" >"$WORK/request.json"

id=""
for page in $(seq 1 20); do
  api Authorization GITHUB_TOKEN GET "$base/issues/$PR_NUMBER/comments?per_page=100&page=$page" >"$WORK/comments.json"
  id="$(json find-comment "$marker" <"$WORK/comments.json")"
  [ -n "$id" ] && break
  [ "$(json count <"$WORK/comments.json")" -lt 100 ] && break
done
if [ -n "$id" ]; then
  api Authorization GITHUB_TOKEN PATCH "$base/issues/comments/$id" "$WORK/request.json" >/dev/null
  log "stack $stack: comment $id updated (report exit $code)"
else
  api Authorization GITHUB_TOKEN POST "$base/issues/$PR_NUMBER/comments" "$WORK/request.json" >/dev/null
  log "stack $stack: comment created (report exit $code)"
fi
[ "$code" -ne 1 ] || die "the preview of $stack failed; the comment carries the error"
