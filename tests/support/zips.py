"""Zip archives for tests, byte-for-byte reproducible.

``ZipFile.writestr(name, data)`` stamps each entry with the current time, so two builds of the same
files a second apart differ and so do their SHA-256s: a test that builds "the same" archive twice
would then see two versions. Every entry here carries one fixed time instead.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

FIXED_TIME = (2026, 1, 1, 0, 0, 0)


def zip_bytes(
    files: dict[str, bytes],
    method: int = zipfile.ZIP_DEFLATED,
    date_time: tuple[int, int, int, int, int, int] = FIXED_TIME,
) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=date_time), data, method)
    return buffer.getvalue()


def write_zip(
    path: Path,
    files: dict[str, bytes],
    method: int = zipfile.ZIP_DEFLATED,
    date_time: tuple[int, int, int, int, int, int] = FIXED_TIME,
) -> Path:
    path.write_bytes(zip_bytes(files, method, date_time))
    return path
