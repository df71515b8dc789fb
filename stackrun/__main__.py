"""`python -m stackrun up|preview|refresh|destroy --stack NAME`: the Pulumi CLI verbs, run by the real engine."""

from __future__ import annotations

import argparse
import sys

from pulumi import automation as auto

from stackrun.workspace import LOCAL_STACK, WorkspaceError, open_stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stackrun", description=__doc__)
    parser.add_argument("verb", choices=["up", "preview", "refresh", "destroy"])
    parser.add_argument("--stack", "-s", default=LOCAL_STACK)
    parser.add_argument("--diff", action="store_true", help="show property-level diffs (pulumi --diff)")
    parser.add_argument("--expect-no-changes", action="store_true", help="fail if anything would change")
    parser.add_argument("--yes", "-y", action="store_true", help="accepted for CLI compatibility (never prompts)")
    args = parser.parse_args(argv)

    def out(line: str) -> None:
        print(line, end="" if line.endswith("\n") else "\n", flush=True)

    def err(line: str) -> None:
        print(line, end="" if line.endswith("\n") else "\n", file=sys.stderr, flush=True)

    try:
        stack = open_stack(args.stack)
        if args.verb == "up":
            stack.up(on_output=out, on_error=err, diff=args.diff, expect_no_changes=args.expect_no_changes or None)
        elif args.verb == "preview":
            stack.preview(on_output=out, on_error=err, diff=args.diff, expect_no_changes=args.expect_no_changes or None)
        elif args.verb == "refresh":
            stack.refresh(on_output=out, on_error=err, expect_no_changes=args.expect_no_changes or None)
        else:
            stack.destroy(on_output=out, on_error=err, diff=args.diff)
    except WorkspaceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except auto.CommandError:
        # The CLI already printed the reason through on_output / on_error.
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
