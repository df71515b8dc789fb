"""Record that the simulator's models were reviewed against the current operation scripts.

Run it (``make bless-scripts``) after changing a script *and* checking that its model in
``devhost/ops`` still does what the script does. The simulator refuses any script text not
recorded here, so a script edited without that review fails loudly instead of passing.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from providers.scripting.runner import ScriptRef, render_script  # noqa: E402

TARGET = ROOT / "devhost" / "ops" / "modelled_scripts.json"


def operation_scripts() -> list[ScriptRef]:
    refs = []
    for script in sorted((ROOT / "providers").glob("*/scripts/*.ps1")):
        if not script.name.startswith("_"):
            refs.append(ScriptRef(f"providers.{script.parent.parent.name}", script.stem))
    return refs


def current_hashes() -> dict[str, list[str]]:
    return {
        ref.operation: [hashlib.sha256(render_script(ref).encode("utf-8")).hexdigest()] for ref in operation_scripts()
    }


def main() -> int:
    from devhost.ops import SCRIPT_FACTS
    from devhost.ps51 import check_script

    problems = [
        problem
        for ref in operation_scripts()
        for problem in check_script(SCRIPT_FACTS, ref.operation, render_script(ref))
    ]
    if problems:
        print("not recorded: the models do not describe these scripts:\n" + "\n".join(problems), file=sys.stderr)
        return 1
    TARGET.write_text(json.dumps(current_hashes(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"recorded {len(current_hashes())} operation scripts in {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
