"""AgentVerification: the manual's check that an installed agent answers, run from the host itself."""

from providers.agent_verification.model import AgentVerificationModel
from providers.agent_verification.resource import AgentVerification

__all__ = ["AgentVerification", "AgentVerificationModel"]
