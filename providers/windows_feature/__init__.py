"""WindowsFeature: Windows Server roles and features (IIS, Application Initialization, RSAT tools)."""

from providers.windows_feature.model import WindowsFeatureModel
from providers.windows_feature.resource import WindowsFeature

__all__ = ["WindowsFeature", "WindowsFeatureModel"]
