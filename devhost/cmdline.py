"""SIMULATOR: how Windows cuts a command line into a program and its arguments.

WinRS hands the program one command line: the ``rsp:Command`` text and the ``rsp:Arguments`` joined by spaces
(learn.microsoft.com, WSManRunShellCommand: "Typically, the command is specified without any arguments, which
are specified separately. However, a user can specify the command line and all of the arguments by using this
parameter"), so ``Command = "powershell.exe -NoLogo -EncodedCommand X"`` with no Arguments starts the same
process as ``Command = "powershell.exe"`` plus those arguments. The program's C runtime then splits it by the
CommandLineToArgvW rules (learn.microsoft.com, "Parsing C++ command-line arguments"; CommandLineToArgvW).

Written here rather than imported from providers.windows_service.model.split_image_path: the simulator must not
share the code it checks.
"""

from __future__ import annotations


def command_line_argv(line: str) -> list[str]:
    """argv of ``line`` as CommandLineToArgvW returns it."""
    text = line.lstrip(" \t")
    if not text:
        return []
    # argv[0] is read without backslash rules: up to the closing quote, or up to the first space or tab.
    if text.startswith('"'):
        end = text.find('"', 1)
        end = len(text) if end < 0 else end
        program, rest = text[1:end], text[end + 1 :]
    else:
        cut = min((i for i in (text.find(" "), text.find("\t")) if i >= 0), default=len(text))
        program, rest = text[:cut], text[cut:]
    return [program, *_arguments(rest)]


def _arguments(rest: str) -> list[str]:
    arguments: list[str] = []
    current, in_quotes, has_token, index = "", False, False, 0
    while index < len(rest):
        char = rest[index]
        if char == "\\":
            run = len(rest[index:]) - len(rest[index:].lstrip("\\"))
            followed_by_quote = index + run < len(rest) and rest[index + run] == '"'
            if followed_by_quote:
                # 2n backslashes + quote: n backslashes, and the quote delimits; 2n+1: n backslashes and a quote.
                current += "\\" * (run // 2)
                if run % 2:
                    current += '"'
                    index += run + 1
                else:
                    index += run
            else:
                current += "\\" * run
                index += run
            has_token = True
            continue
        if char == '"':
            if in_quotes and rest[index + 1 : index + 2] == '"':
                # "" inside a quoted part is one literal quote (the rule since the 2008 C runtime).
                current += '"'
                index += 2
                has_token = True
                continue
            in_quotes, has_token = not in_quotes, True
        elif char in " \t" and not in_quotes:
            if has_token:
                arguments.append(current)
            current, has_token = "", False
        else:
            current, has_token = current + char, True
        index += 1
    if has_token:
        arguments.append(current)
    return arguments
