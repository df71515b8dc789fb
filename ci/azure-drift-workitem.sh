#!/usr/bin/env bash
# ci/azure-drift-workitem.sh STACK: the nightly drift check of STACK, kept as ONE open Azure Boards
# work item tagged drift:STACK (REST API 7.1: wiql, work items), its description the report.
#
# Drift (report exit 7) or a failed check (exit 1): the open work item's description is replaced
# (created if there is none). No drift (exit 0): the open work item, if any, moves to
# $DRIFT_CLOSED_STATE. Needs SYSTEM_ACCESSTOKEN, SYSTEM_COLLECTIONURI, SYSTEM_TEAMPROJECT;
# DRIFT_WORK_ITEM_TYPE (default Issue) and DRIFT_CLOSED_STATE (default Done) fit the Basic process
# (Agile: Issue / Closed). AZURE_DEVOPS_API_URL overrides the collection URI.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

stack="${1:?usage: ci/azure-drift-workitem.sh STACK}"
need SYSTEM_ACCESSTOKEN
need SYSTEM_TEAMPROJECT
project_url="$(azure_project_url)"
wit="$project_url/_apis/wit"
version="api-version=7.1"
type="${DRIFT_WORK_ITEM_TYPE:-Issue}"
closed="${DRIFT_CLOSED_STATE:-Done}"
tag="drift:$stack"

code=0
report "$stack" drift "$WORK/report.md" || code=$?

query="SELECT [System.Id] FROM WorkItems WHERE [System.TeamProject] = @project AND [System.Tags] CONTAINS '$tag' AND [System.State] <> '$closed' ORDER BY [System.Id]"
json object "query=$query" >"$WORK/wiql.json"
api Authorization SYSTEM_ACCESSTOKEN POST "$wit/wiql?$version" "$WORK/wiql.json" >"$WORK/found.json"
id="$(json first-work-item <"$WORK/found.json")"

if [ "$code" -eq 0 ]; then
  if [ -n "$id" ]; then
    json patch "/fields/System.State=$closed" "/fields/System.History=No drift any more in stack $stack: closing." >"$WORK/close.json"
    CONTENT_TYPE=application/json-patch+json api Authorization SYSTEM_ACCESSTOKEN PATCH "$wit/workitems/$id?$version" "$WORK/close.json" >/dev/null
    log "stack $stack: no drift; work item $id closed"
  else
    log "stack $stack: no drift"
  fi
  exit 0
fi

if [ -n "$id" ]; then
  json patch "/fields/System.Description=@$WORK/report.md" "/multilineFieldsFormat/System.Description=Markdown" >"$WORK/update.json"
  CONTENT_TYPE=application/json-patch+json api Authorization SYSTEM_ACCESSTOKEN PATCH "$wit/workitems/$id?$version" "$WORK/update.json" >/dev/null
  log "stack $stack: work item $id updated (report exit $code)"
else
  json patch "/fields/System.Title=Drift in stack $stack" "/fields/System.Tags=$tag" \
    "/fields/System.Description=@$WORK/report.md" "/multilineFieldsFormat/System.Description=Markdown" >"$WORK/create.json"
  CONTENT_TYPE=application/json-patch+json api Authorization SYSTEM_ACCESSTOKEN POST "$wit/workitems/\$$type?$version" "$WORK/create.json" >/dev/null
  log "stack $stack: work item created (report exit $code)"
fi
[ "$code" -ne 1 ] || die "the drift check of $stack failed; the work item carries the error"
