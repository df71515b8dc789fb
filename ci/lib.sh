# Shared by the ci/ scripts (sourced, not run). Never prints a secret: tokens go to curl through a
# header file readable only by this user, never on a command line, never echoed (no `set -x`).
# shellcheck shell=bash

CI_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$CI_DIR/.." && pwd)"
PYTHON="${PYTHON:-$([ -x "$REPO_ROOT/.venv/bin/python" ] && echo "$REPO_ROOT/.venv/bin/python" || echo python3)}"
# The command that runs the Pulumi verbs; tests point it at a copy of the project.
read -r -a STACKRUN_CMD <<<"${STACKRUN:-$PYTHON -m stackrun}"
cd "${PROJECT_DIR:-$REPO_ROOT}"

log() { echo "ci: $*" >&2; }
die() { log "$*"; exit 1; }
need() { [ -n "${!1:-}" ] || die "$1 is not set"; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# stackrun VERB ARGS...: the verb's exit code, its output on stderr (the run log).
stackrun() { "${STACKRUN_CMD[@]}" "$@"; }

# report STACK KIND FILE: writes the markdown report; returns 0 (no change), 7 (changes), 1 (failed).
report() {
  local code=0
  stackrun report --stack "$1" --kind "$2" --output "$3" || code=$?
  [ -s "$3" ] || printf '### %s of stack `%s`\n\n**The run failed before it produced a report** (exit %s); see the run log.\n' \
    "$2" "$1" "$code" >"$3"
  case "$code" in 0 | 7) return "$code" ;; *) return 1 ;; esac
}

# json ARGS...: ci/json_tool.py (builds request bodies, reads responses).
json() { "$PYTHON" "$CI_DIR/json_tool.py" "$@"; }

# api HEADER_NAME TOKEN_VAR METHOD URL [BODY_FILE]: the response body on stdout; fails on HTTP >= 400.
# CONTENT_TYPE overrides the request's content type (JSON Patch for Azure Boards).
api() {
  local header="$1" token_var="$2" method="$3" url="$4" body="${5:-}"
  local headers="$WORK/headers"
  (umask 077 && printf '%s: Bearer %s\n' "$header" "${!token_var}" >"$headers")
  local args=(--silent --show-error --fail-with-body --retry 3 -X "$method" -H "@$headers"
    -H "Content-Type: ${CONTENT_TYPE:-application/json}" -H "Accept: application/json")
  [ -n "$body" ] && args+=(--data-binary "@$body")
  curl "${args[@]}" "$url"
}

# The Azure DevOps project's REST base: the collection URI (AZURE_DEVOPS_API_URL overrides it) and
# the URL-quoted SYSTEM_TEAMPROJECT, without a trailing slash.
azure_project_url() {
  need SYSTEM_TEAMPROJECT
  local collection="${AZURE_DEVOPS_API_URL:-${SYSTEM_COLLECTIONURI:?SYSTEM_COLLECTIONURI is not set}}"
  local project
  project="$("$PYTHON" -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$SYSTEM_TEAMPROJECT")"
  echo "${collection%/}/$project"
}
