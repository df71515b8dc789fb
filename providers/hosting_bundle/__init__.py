"""HostingBundle: the .NET Hosting Bundle installer, uploaded in resumable chunks and run silently when the host
lacks the version asked for, or repaired when IIS came after it and AspNetCoreModuleV2 is missing."""

from providers.hosting_bundle.model import HostingBundleModel
from providers.hosting_bundle.resource import HostingBundle

__all__ = ["HostingBundle", "HostingBundleModel"]
