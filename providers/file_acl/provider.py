"""FileAcl lifecycle on the host (scripts in ./scripts)."""

from __future__ import annotations

from typing import Any, ClassVar

from pulumi.dynamic import DiffResult

from providers.file_acl.model import FileAclModel
from providers.framework.checks import contains_unknown
from providers.framework.model import ResourceModel
from providers.framework.provider import WindowsResourceProvider, connection_change
from providers.scripting import ScriptRef, run_script
from providers.scripting.errors import HostOperationFailed


class FileAclProvider(WindowsResourceProvider):
    model = FileAclModel
    package = "providers.file_acl"
    output_keys: ClassVar[tuple[str, ...]] = ("principal_sid", "principal_name", "access_mask")

    def actual_properties(self, spec: ResourceModel, state: dict[str, Any]) -> dict[str, Any]:
        assert isinstance(spec, FileAclModel)
        return spec.actual_from(state)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        # Remove by the SID recorded when the entry was granted: the account may be gone by now
        # (a pool deleted first), and its entry must still be removable.
        spec = self._spec(props)
        payload = {**spec.script_input(), "principal_sid": props.get("principal_sid")}
        run_script(
            spec.connection, ScriptRef(self.package, "remove"), payload, resource=f"{spec.kind} '{spec.resource_id()}'"
        )

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [
            key
            for key in self.model.desired_keys()
            if (contains_unknown(news.get(key)) or olds.get(key) != news.get(key)) and not self._same(key, olds, news)
        ]
        replaces = [key for key in changed if key in self.model.replace_keys()]
        moved, reach = connection_change(olds, news)
        # Delete first: old and new entry may be the same ACE (same SID, path differing only in case),
        # and deleting the old one after creating the new one would remove what was just granted.
        if moved:
            # Another host: its entry cannot be the one deleted here, so create it first like any move.
            return DiffResult(changes=True, replaces=[*replaces, "connection"], delete_before_replace=False)
        return DiffResult(changes=bool(changed) or reach, replaces=replaces, delete_before_replace=True)

    def _same(self, key: str, olds: dict[str, Any], news: dict[str, Any]) -> bool:
        old, new = olds.get(key), news.get(key)
        if contains_unknown(new) or not isinstance(new, str) or not isinstance(old, str):
            return False
        if key == "path":
            return old.lower() == new.lower()  # NTFS paths are case-insensitive
        if key != "principal":
            return False
        # Principals are compared by SID: 'IIS AppPool\Agent', 'iis apppool\agent' and its SID are one account.
        known = {str(olds.get(k) or "").lower() for k in ("principal", "principal_sid", "principal_name")}
        if new.lower() in known:
            return True
        if contains_unknown(news) or not olds.get("principal_sid"):
            return False
        try:
            state = self._run(self._spec(news), "get").state
        except HostOperationFailed:
            return False  # unknown on the host: a real change, and create will say why
        return str(state.get("principal_sid", "")).upper() == str(olds["principal_sid"]).upper()
