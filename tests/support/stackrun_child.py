"""``python -m tests.support.stackrun_child PROJECT_DIR VERB [flags]``: stackrun on a copy of the project, in a
process of its own.

What ``EstateProject.run`` does in the test's own process, for the tests that signal the ``pulumi`` CLI: the
inline program's language server then lives in this process, which ends when its ``pulumi`` does, instead of
threads of the test's process left waiting on an engine that is gone. The backend and the passphrase come in
the environment (``PULUMI_BACKEND_URL``, ``PULUMI_CONFIG_PASSPHRASE``), never on a command line.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

from stackrun.cli import main as stackrun_main


def main(argv: list[str]) -> int:
    project = Path(argv[0])

    def program() -> None:
        runpy.run_path(str(project / "__main__.py"), run_name="__main__")

    return stackrun_main(argv[1:], program=program, work_dir=project)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
