"""SIMULATOR: System.IO.Compression's ZipFile as .NET Framework 4.5-4.8 has it (what Windows PowerShell 5.1
loads with ``Add-Type -AssemblyName System.IO.Compression.FileSystem``): ``OpenRead(path).Entries`` and
``ExtractToDirectory(archive, destination)``, and the same over a stream the caller holds open: ``new
ZipArchive(stream, ZipArchiveMode.Read, leaveOpen).Entries`` and ``ZipFileExtensions.ExtractToDirectory(archive,
destination)`` (what ZipFile.ExtractToDirectory calls once it has opened the file: dotnet/runtime
ZipFile.Extract.cs, .NET Framework reference source ZipFile.cs), given here as the stream's bytes.

From Microsoft's documentation (learn.microsoft.com, ZipFile.ExtractToDirectory(String, String) and
ZipFileExtensions.ExtractToFile, .NET Framework 4.5+):
- IOException when the destination directory already exists (the documentation's wording; dotnet/runtime#53609
  reports that the implementation accepts an existing folder: the scripts never give it one, so both readings
  agree); when an entry would be extracted outside the destination ("..", a rooted name); when an entry has
  the name of a file already extracted or already in the destination: this overload never overwrites; when a
  name ending with a separator carries data;
- ArgumentException for a name with a character Windows refuses in paths;
- InvalidDataException for an entry compressed with a method other than Stored or Deflate (Deflate64 came with
  .NET Core 3.0), for data that does not decode, and from OpenRead for a file that is no zip archive;
- "If there is an error when extracting the archive, the archive will remain partially extracted."
.NET Framework checks no CRC-32 when it extracts, so neither does this model. Not modelled, refused loudly:
encrypted entries and archives split over several files.
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from devhost.fileops import DotNetError
from devhost.fs import WindowsFs

_INVALID_PATH_CHARS = re.compile(r'["<>|\x00-\x1f]')  # Path.GetInvalidPathChars on .NET Framework 4.6.2+
_LOCAL_HEADER = struct.Struct("<4s5H3I2H")


class NotModelled(Exception):
    """An archive feature the simulator does not model (it refuses loudly instead of guessing)."""


@dataclass(frozen=True)
class Entry:
    full_name: str  # ZipArchiveEntry.FullName: the name as stored ('/' separators, as most tools write)
    length: int  # uncompressed size
    info: zipfile.ZipInfo


def _invalid_data(message: str) -> DotNetError:
    return DotNetError("System.IO.InvalidDataException", message, 0x80131501)


_EOCD = b"PK\x05\x06"
_EOCD_SEARCH = 22 + 0xFFFF  # the record and the longest comment it may end with


def _entries(source: Path | io.BytesIO) -> list[Entry]:
    """The constructor (Read mode: only the End of Central Directory record, InvalidDataException when there is
    none), then Entries, which reads the central directory: a damaged one throws InvalidDataException "Central
    Directory corrupt." there (microsoft/referencesource System.IO.Compression ZipArchive.cs: Init,
    EnsureCentralDirectoryRead, ReadCentralDirectory; SR.CentralDirectoryInvalid)."""
    data = source.read_bytes() if isinstance(source, Path) else source.getvalue()
    if _EOCD not in data[-_EOCD_SEARCH:]:
        raise _invalid_data("End of Central Directory record could not be found.")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except zipfile.BadZipFile:
        raise _invalid_data("Central Directory corrupt.") from None
    for info in infos:
        if info.flag_bits & 0x1:
            raise NotModelled(f"SIMULATOR: encrypted zip entry {info.filename!r} is not modelled")
    return [Entry(info.filename, info.file_size, info) for info in infos]


def open_read(fs: WindowsFs, path: str) -> list[Entry]:
    """ZipFile.OpenRead(path).Entries."""
    return _entries(fs.resolve(path))


def open_stream(data: bytes) -> list[Entry]:
    """new ZipArchive(stream, ZipArchiveMode.Read, true).Entries, ``data`` being what the stream reads."""
    return _entries(io.BytesIO(data))


def _data(handle: io.BufferedIOBase | io.BytesIO, entry: Entry) -> bytes:
    """The entry's bytes, decoded as .NET Framework does: Stored or Deflate, no CRC-32 check."""
    info = entry.info
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise _invalid_data("The archive entry was compressed using an unsupported compression method.")
    handle.seek(info.header_offset)
    header = _LOCAL_HEADER.unpack(handle.read(_LOCAL_HEADER.size))
    if header[0] != b"PK\x03\x04":
        raise _invalid_data("A local file header is corrupt.")
    name_length, extra_length = header[9], header[10]
    handle.seek(info.header_offset + _LOCAL_HEADER.size + name_length + extra_length)
    raw = handle.read(info.compress_size)
    if info.compress_type == zipfile.ZIP_STORED:
        return raw
    try:
        return zlib.decompressobj(-zlib.MAX_WBITS).decompress(raw)
    except zlib.error:
        raise _invalid_data("Found invalid data while decoding.") from None


def _full_path(destination: str, full_name: str) -> str:
    """Path.GetFullPath(Path.Combine(destination, name)) for the names the model accepts."""
    if _INVALID_PATH_CHARS.search(full_name):
        raise DotNetError("System.ArgumentException", "Illegal characters in path.", 0x80070057)
    name = full_name.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return name  # rooted: Path.Combine returns the name itself, which is outside the destination
    parts: list[str] = []
    for part in PurePosixPath(name).parts:
        if part == "..":
            if not parts:
                return "\\".join([destination.rsplit("\\", 1)[0], "outside"])
            parts.pop()
        elif part != ".":
            parts.append(part)
    trailing = "\\" if name.endswith("/") else ""
    return "\\".join([destination, *parts]) + trailing


def extract_to_directory(fs: WindowsFs, path: str, destination: str) -> None:
    """ZipFile.ExtractToDirectory(path, destination); raises the DotNetError the method throws."""
    open_read(fs, path)  # (OpenRead's own error first, for a file that is no zip archive)
    extract_stream(fs, fs.resolve(path).read_bytes(), destination)


def extract_entry(fs: WindowsFs, data: bytes, entry: Entry, target: str) -> None:
    """ZipFileExtensions.ExtractToFile(entry, target, overwrite: false) for an entry of an archive over a stream
    reading ``data``: IOException for a file that exists; the folder must exist (FileMode.CreateNew)."""
    file = fs.resolve(target)
    if file.exists():
        raise DotNetError("System.IO.IOException", f"The file '{target}' already exists.", 0x80070050)
    if not file.parent.is_dir():
        raise DotNetError(
            "System.IO.DirectoryNotFoundException", f"Could not find a part of the path '{target}'.", 0x80070003
        )
    file.write_bytes(_data(io.BytesIO(data), entry))


def extract_stream(fs: WindowsFs, data: bytes, destination: str) -> None:
    """ZipFileExtensions.ExtractToDirectory(archive, destination) for an archive over a stream reading ``data``."""
    entries = open_stream(data)
    handle = io.BytesIO(data)
    if fs.resolve(destination).exists():
        raise DotNetError("System.IO.IOException", f"The directory '{destination}' already exists.", 0x800700B7)
    fs.resolve(destination).mkdir(parents=True)
    prefix = destination.lower() + "\\"
    for entry in entries:
        target = _full_path(destination, entry.full_name)
        if not target.lower().startswith(prefix):
            raise DotNetError(
                "System.IO.IOException",
                "Extracting Zip entry would have resulted in a file outside the specified destination directory.",
            )
        if target.endswith("\\"):
            if entry.length != 0:
                raise DotNetError(
                    "System.IO.IOException", "Zip entry name ends in directory separator character but contains data."
                )
            fs.resolve(target.rstrip("\\")).mkdir(parents=True, exist_ok=True)
            continue
        file = fs.resolve(target)
        if file.exists():
            raise DotNetError("System.IO.IOException", f"The file '{target}' already exists.", 0x80070050)
        content = _data(handle, entry)
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(content)
