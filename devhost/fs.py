"""SIMULATOR: the Windows file system of the simulated host, kept under ``<state>/<drive letter>/``.

Windows paths are case-insensitive and case-preserving; lookups here follow that rule.
"""

from __future__ import annotations

import re
from pathlib import Path

_ABSOLUTE = re.compile(r"^([A-Za-z]):\\(.*)$")


class WindowsPathError(ValueError):
    """The path is not one Windows would accept (what .NET raises as ArgumentException)."""


class PathTooLongError(WindowsPathError):
    """.NET Framework's PathTooLongException. powershell.exe 5.1 is not long-path aware (no longPathAware
    manifest, whatever LongPathsEnabled says: learn.microsoft.com "Maximum Path Length Limitation"), and .NET
    Framework's path handling refuses a full path of MAX_PATH (260) characters or more before any file is
    touched, with the message below (the same limit as providers/framework/validators.py)."""


MAX_PATH = 260
PATH_TOO_LONG = (
    "The specified path, file name, or both are too long. The fully qualified file name must be less than "
    "260 characters, and the directory name must be less than 248 characters."
)


class WindowsFs:
    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir

    def resolve(self, windows_path: str) -> Path:
        """The on-disk path for ``windows_path``, matching existing entries case-insensitively."""
        match = _ABSOLUTE.match(windows_path)
        if not match:
            raise WindowsPathError(f"The path '{windows_path}' is not an absolute Windows path.")
        if len(windows_path.rstrip("\\")) >= MAX_PATH:
            raise PathTooLongError(PATH_TOO_LONG)
        current = self.root / match.group(1).upper()
        for part in [p for p in match.group(2).split("\\") if p]:
            if part in (".", ".."):
                raise WindowsPathError(f"The simulator does not model relative segments in '{windows_path}'.")
            current = self._child(current, part)
        return current

    @staticmethod
    def _child(folder: Path, name: str) -> Path:
        exact = folder / name
        if exact.exists() or not folder.is_dir():
            return exact
        lowered = name.lower()
        for entry in folder.iterdir():
            if entry.name.lower() == lowered:
                return entry
        return exact

    def to_windows(self, path: Path) -> str:
        relative = path.relative_to(self.root)
        drive, *rest = relative.parts
        return f"{drive}:\\" + "\\".join(rest)
