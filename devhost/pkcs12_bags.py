"""SIMULATOR: the one thing of a PKCS#12 file that ``cryptography`` does not expose: the key storage provider its
key bag names, which decides where Windows puts the key.

Microsoft's "CSP name" bag attribute (szOID_PKCS_12_KEY_PROVIDER_NAME_ATTR, 1.3.6.1.4.1.311.17.1, a BMPString;
`openssl pkcs12 -export -CSP <name>` writes it, Windows' own export writes the key's provider) names the provider
PFXImportCertStore imports the key into: "If the CSP is specified in the PFX file, then the CSP is used"
(learn.microsoft.com, PFXImportCertStore, PKCS12_PREFER_CNG_KSP), and .NET Framework's X509Certificate2 passes no
CNG flag at all. So a key bag naming "Microsoft Software Key Storage Provider" lands in CNG (Crypto\\Keys) even as
RSA, and one naming no provider (what ``cryptography`` and OpenSSL write by default) in the legacy CSP.

The structure (RFC 7292): PFX ::= SEQUENCE { version, authSafe ContentInfo, macData OPTIONAL }; the authSafe's
content ([0] EXPLICIT OCTET STRING) is AuthenticatedSafe ::= SEQUENCE OF ContentInfo; an id-data ContentInfo holds
SafeContents ::= SEQUENCE OF SafeBag in an OCTET STRING; SafeBag ::= SEQUENCE { bagId, [0] EXPLICIT bagValue,
bagAttributes SET OF Attribute OPTIONAL }; Attribute ::= SEQUENCE { attrType OID, attrValues SET }. Key bags in an
id-encryptedData ContentInfo have their attributes encrypted with them: not read here (OpenSSL and Windows put the
shrouded key bag in an id-data one, whose bag attributes are in clear).
"""

from __future__ import annotations

_DATA = bytes.fromhex("2a864886f70d010701")  # 1.2.840.113549.1.7.1 id-data
_KEY_BAGS = (
    bytes.fromhex("2a864886f70d010c0a0101"),  # 1.2.840.113549.1.12.10.1.1 keyBag
    bytes.fromhex("2a864886f70d010c0a0102"),  # 1.2.840.113549.1.12.10.1.2 pkcs8ShroudedKeyBag
)
_PROVIDER_NAME = bytes.fromhex("2b0601040182371101")  # 1.3.6.1.4.1.311.17.1


class _Der:
    """A cursor over DER: (tag, content) one element at a time."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def more(self) -> bool:
        return self.at < len(self.data)

    def next(self) -> tuple[int, bytes]:
        tag = self.data[self.at]
        length = self.data[self.at + 1]
        start = self.at + 2
        if length & 0x80:
            count = length & 0x7F
            length = int.from_bytes(self.data[start : start + count], "big")
            start += count
        end = start + length
        if end > len(self.data):
            raise ValueError("truncated DER")
        self.at = end
        return tag, self.data[start:end]


def _children(content: bytes) -> list[tuple[int, bytes]]:
    cursor, found = _Der(content), []
    while cursor.more():
        found.append(cursor.next())
    return found


def _only(content: bytes) -> bytes:
    """The content of the one element ``content`` holds (an EXPLICIT tag's, an OCTET STRING's)."""
    return _children(content)[0][1]


def _bag_provider(bag: bytes) -> str | None:
    fields = _children(bag)
    for tag, attributes in fields[2:]:
        if tag != 0x31:  # SET OF Attribute
            continue
        for _, attribute in _children(attributes):
            (_, oid), (_, values) = _children(attribute)[:2]
            if oid == _PROVIDER_NAME:
                return _only(values).decode("utf-16-be")
    return None


def key_provider(pfx: bytes) -> str | None:
    """The provider the PFX's first key bag names, or None (no attribute, or not readable without decrypting)."""
    try:
        pfx_fields = _children(_only(pfx))  # version, authSafe, macData
        (_, content_type), (_, explicit) = _children(pfx_fields[1][1])[:2]
        if content_type != _DATA:
            return None
        for _, info in _children(_only(_only(explicit))):  # AuthenticatedSafe
            parts = _children(info)
            if parts[0][1] != _DATA or len(parts) < 2:
                continue  # id-encryptedData: its bags' attributes are encrypted with them
            for _, bag in _children(_only(_only(parts[1][1]))):  # SafeContents
                if _children(bag)[0][1] in _KEY_BAGS:
                    return _bag_provider(bag)
    except (ValueError, IndexError):
        return None
    return None
