"""JSON for the ci/ scripts (no jq on every agent): request bodies in, ids out. Standard library only.

json_tool.py object KEY=@FILE|KEY=VALUE|KEY:=JSON ...   a JSON object on stdout
json_tool.py find-comment MARKER < comments.json         id of the first comment whose body has MARKER
json_tool.py count < list.json                           how many items the list holds
json_tool.py first-number < issues.json                  number of the first issue (no output if none)
json_tool.py patch PATH=@FILE|PATH=VALUE ...             a JSON Patch document ("add" operations)
json_tool.py first-work-item < wiql.json                 id of the first work item of a WIQL answer
json_tool.py find-thread MARKER < threads.json           "THREAD COMMENT" ids of the Azure DevOps thread
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def build(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        if ":=" in pair and ("=" not in pair or pair.index(":=") < pair.index("=")):
            key, raw = pair.split(":=", 1)
            out[key] = json.loads(raw)
        else:
            key, value = pair.split("=", 1)
            out[key] = Path(value[1:]).read_text(encoding="utf-8") if value.startswith("@") else value
    return out


def main(argv: list[str]) -> int:
    command, args = argv[0], argv[1:]
    if command == "object":
        print(json.dumps(build(args)))
        return 0
    if command == "patch":
        print(json.dumps([{"op": "add", "path": path, "value": value} for path, value in build(args).items()]))
        return 0
    data = json.load(sys.stdin)
    if command == "find-comment":
        found = [c["id"] for c in data if args[0] in (c.get("body") or "")]
        if found:
            print(found[0])
    elif command == "count":
        print(len(data))
    elif command == "first-number":
        if data:
            print(data[0]["number"])
    elif command == "first-work-item":
        if data.get("workItems"):
            print(data["workItems"][0]["id"])
    elif command == "find-thread":
        for thread in data.get("value", []):
            comments = thread.get("comments") or []
            if comments and args[0] in (comments[0].get("content") or ""):
                print(thread["id"], comments[0]["id"])
                break
    else:
        print(f"unknown command {command}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
