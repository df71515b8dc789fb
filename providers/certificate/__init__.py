"""Certificate: a PFX imported into the machine's certificate store, with read access to its private key."""

from providers.certificate.model import CertificateModel
from providers.certificate.resource import Certificate

__all__ = ["Certificate", "CertificateModel"]
