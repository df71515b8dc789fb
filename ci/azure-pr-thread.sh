#!/usr/bin/env bash
# ci/azure-pr-thread.sh STACK: preview STACK and keep ONE Azure DevOps pull-request thread for it,
# its first comment edited in place (REST API 7.1: pullRequestThreads, pullRequestThreadComments).
#
# The thread is found by the hidden marker `<!-- usercube-preview:STACK -->`; it is written on every
# run (changes, no changes, or the error: then this script exits 1 after posting). Needs
# SYSTEM_ACCESSTOKEN (the pipeline's job token, mapped explicitly in the step's env),
# SYSTEM_COLLECTIONURI, SYSTEM_TEAMPROJECT, BUILD_REPOSITORY_ID, SYSTEM_PULLREQUEST_PULLREQUESTID
# (all predefined in a pull-request build). AZURE_DEVOPS_API_URL overrides the collection URI.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

stack="${1:?usage: ci/azure-pr-thread.sh STACK}"
need SYSTEM_ACCESSTOKEN
need SYSTEM_TEAMPROJECT
need BUILD_REPOSITORY_ID
need SYSTEM_PULLREQUEST_PULLREQUESTID
project_url="$(azure_project_url)"
threads="$project_url/_apis/git/repositories/$BUILD_REPOSITORY_ID/pullRequests/$SYSTEM_PULLREQUEST_PULLREQUESTID/threads"
version="api-version=7.1"
marker="<!-- usercube-preview:$stack -->"

code=0
report "$stack" preview "$WORK/report.md" || code=$?
{ echo "$marker"; cat "$WORK/report.md"; } >"$WORK/comment.md"

api Authorization SYSTEM_ACCESSTOKEN GET "$threads?$version" >"$WORK/threads.json"
read -r thread comment < <(json find-thread "$marker" <"$WORK/threads.json"; echo) || true
if [ -n "${thread:-}" ]; then
  json object "content=@$WORK/comment.md" >"$WORK/request.json"
  api Authorization SYSTEM_ACCESSTOKEN PATCH "$threads/$thread/comments/$comment?$version" "$WORK/request.json" >/dev/null
  log "stack $stack: thread $thread updated (report exit $code)"
else
  json object "content=@$WORK/comment.md" parentCommentId:=0 commentType:=1 >"$WORK/comment.json"
  "$PYTHON" -c 'import json, sys; print(json.dumps({"comments": [json.load(open(sys.argv[1]))], "status": 1}))' \
    "$WORK/comment.json" >"$WORK/request.json"
  api Authorization SYSTEM_ACCESSTOKEN POST "$threads?$version" "$WORK/request.json" >/dev/null
  log "stack $stack: thread created (report exit $code)"
fi
[ "$code" -ne 1 ] || die "the preview of $stack failed; the thread carries the error"
