"""powershell.exe's stderr as text (it arrives as CLIXML when stderr is redirected, as over WinRM)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

_CLIXML_HEADER = "#< CLIXML"
_CLIXML_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
_PS_NAMESPACE = "{http://schemas.microsoft.com/powershell/2004/04}"


def decode_stderr(raw: bytes) -> str:
    """powershell.exe's stderr as text.

    Under -EncodedCommand with redirected stderr (always, over WinRM), powershell.exe 5.1 writes error,
    warning and progress records as CLIXML behind a ``#< CLIXML`` line (as pywinrm's
    ``Session._clean_error_msg`` decodes it): keep the error and warning strings, unescape ``_xHHHH_``,
    drop progress records. Anything else is returned as it came.
    """
    text = raw.decode("utf-8", errors="replace")
    start = text.find(_CLIXML_HEADER)
    if start < 0:
        return text.strip()
    before, xml_text = text[:start], text[start + len(_CLIXML_HEADER) :].strip()
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError:
        return text.strip()
    lines = [
        _CLIXML_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), node.text or "")
        for node in root.iter(f"{_PS_NAMESPACE}S")
        if node.get("S") in ("Error", "Warning")
    ]
    return (before + "".join(lines)).strip()
