"""Value checks shared by resource models; each message says what is wrong and how to fix it."""

from __future__ import annotations

import re

_DRIVE_PATH = re.compile(r"^[A-Za-z]:\\")
_FORBIDDEN = re.compile(r'[<>"|?*\x00-\x1f]')
# The scripts run in powershell.exe 5.1 on .NET Framework, which is not long-path aware: its file APIs
# throw PathTooLongException from MAX_PATH (260 characters with the terminating NUL), whatever
# LongPathsEnabled says (learn.microsoft.com, "Maximum Path Length Limitation": an application must
# declare longPathAware in its manifest, which powershell.exe 5.1 does not). A directory must also
# leave room for an 8.3 file name (CreateDirectory: MAX_PATH - 12).
MAX_FILE_PATH = 259
MAX_FOLDER_PATH = 247
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


def windows_absolute_path(value: str, *, allow_root: bool = False, max_length: int = MAX_FILE_PATH) -> str:
    """A local absolute path like ``C:\\identitymanager\\Runtime``; returns it without a trailing backslash."""
    if "/" in value:
        suggestion = value.replace("/", "\\")
        raise ValueError(f"{value!r} uses forward slashes; Windows paths use backslashes: {suggestion!r}")
    if not _DRIVE_PATH.match(value):
        raise ValueError(
            f"{value!r} is not an absolute Windows path; "
            "give the drive and full path, e.g. 'C:\\identitymanager\\Runtime'"
        )
    trimmed = value.rstrip("\\") if len(value) > 3 else value
    parts = trimmed[3:].split("\\") if len(trimmed) > 3 else []
    if not parts and not allow_root:
        raise ValueError(f"{value!r} is a drive root; give a folder or file below it")
    for part in parts:
        if part in ("", ".", ".."):
            raise ValueError(f"{value!r} has an empty, '.' or '..' segment; give the normalized full path")
        if _FORBIDDEN.search(part) or ":" in part:
            raise ValueError(f'{value!r}: segment {part!r} contains a character Windows forbids in names (<>:"|?*)')
        if part.rstrip(" .") != part:
            raise ValueError(f"{value!r}: segment {part!r} ends with a space or dot, which Windows strips silently")
        if part.split(".")[0].upper() in _RESERVED:
            raise ValueError(f"{value!r}: segment {part!r} is a reserved device name on Windows")
    if len(trimmed) > max_length:
        raise ValueError(
            f"path is {len(trimmed)} characters long; Windows PowerShell 5.1 (.NET Framework, no long-path "
            f"support) handles at most {max_length} here: choose a shorter folder (e.g. C:\\identitymanager\\<org>)"
        )
    return trimmed


SID_PATTERN = re.compile(r"^S-1-\d+(-\d+){0,14}$", re.IGNORECASE)
# Characters Windows refuses in account and domain names (sAMAccountName rules).
_ACCOUNT_FORBIDDEN = re.compile(r'["/\[\]:;|=,+*?<>]')


def account_name(value: str) -> str:
    """An account as Windows resolves it: 'DOMAIN\\name', 'name' or a SID 'S-1-5-...' (normalized).

    The one check of an account name for every resource that names one (FileAcl principal, settings-file and
    certificate readers, the agent's identity).
    """
    text = value.strip()
    if not text:
        raise ValueError(
            "is empty: an empty name names no account; give accounts such as 'IIS AppPool\\Agent' or "
            "'CONTOSO\\svc-agent$'"
        )
    if text.upper().startswith("S-"):
        if not SID_PATTERN.match(text):
            raise ValueError(f"{value!r} is not a valid SID; a SID looks like 'S-1-5-21-1004336348-...-1105'")
        return "S" + text[1:]
    parts = text.split("\\")
    if len(parts) > 2 or any(not part.strip() for part in parts):
        raise ValueError(f"{value!r} is not an account name; give 'DOMAIN\\name', 'name' or a SID")
    if _ACCOUNT_FORBIDDEN.search(text):
        raise ValueError(
            f"{value!r} is not an account name; give 'DOMAIN\\name', 'name' or a SID "
            '(it contains a character Windows forbids in account names: "/[]:;|=,+*?<>)'
        )
    return text
