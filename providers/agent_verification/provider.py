"""AgentVerification: create and update run the check and fail with the likely cause; read (refresh) runs it and
reports an agent that stopped answering as drift of ``answers``, with the cause in a warning; delete touches
nothing (a check leaves nothing on the host)."""

from __future__ import annotations

from typing import Any, ClassVar

import pulumi
from pulumi.dynamic import CreateResult, ReadResult, UpdateResult

from providers.agent_verification.model import AgentVerificationModel
from providers.framework.model import ResourceModel
from providers.framework.provider import WindowsResourceProvider
from providers.scripting import OperationResult, ScriptRef, run_script


class AgentVerificationProvider(WindowsResourceProvider):
    model = AgentVerificationModel
    package = "providers.agent_verification"
    output_keys: ClassVar[tuple[str, ...]] = ("status", "served_thumbprint", "problem", "causes")

    def actual_properties(self, spec: ResourceModel, state: dict[str, Any]) -> dict[str, Any]:
        return {"answers": bool(state.get("answers"))}

    def create(self, props: dict[str, Any]) -> CreateResult:
        spec = self._spec(props)
        return CreateResult(spec.resource_id(), self._outs(spec, self._check(spec, "check")))

    def apply_update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        spec = self._spec(news)
        return UpdateResult(self._outs(spec, self._check(spec, "check")))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        spec = self._spec(props)
        result = self._check(spec, "report")
        if not result.state.get("answers"):
            causes = "; ".join(result.state.get("causes") or []) or "no cause found in the host's configuration"
            problem = result.state.get("problem")
            pulumi.log.warn(f"{spec.kind} '{spec.resource_id()}': {problem}; likely cause: {causes}")
        inputs = {**spec.model_dump(mode="json"), **self.actual_properties(spec, result.state)}
        return ReadResult(id_, {**inputs, **self.outputs(spec, result.state)}, inputs)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        return None

    def _check(self, spec: ResourceModel, mode: str) -> OperationResult:
        return run_script(
            spec.connection,
            ScriptRef(self.package, "get"),
            {**spec.script_input(), "mode": mode},
            resource=f"{spec.kind} '{spec.resource_id()}'",
        )
