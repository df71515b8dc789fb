"""The FileAcl properties: the single source of truth for validation, diffs and docs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ValidationInfo, field_validator

from providers.file_acl import rights as fs_rights
from providers.framework.model import ResourceModel, prop
from providers.framework.validators import account_name, windows_absolute_path
from providers.scripting.host_locks import dacl_lock_input

Inheritance = Literal["ContainerInherit", "ObjectInherit"]
Propagation = Literal["NoPropagateInherit", "InheritOnly"]
BOTH: list[str] = ["ContainerInherit", "ObjectInherit"]


class FileAclModel(ResourceModel):
    """One account's explicit access entry on a file or folder; other accounts' and inherited entries stay."""

    kind = "FileAcl"

    path: str = prop(
        description="Absolute Windows path of the folder or file, e.g. C:\\identitymanagerContoso\\Runtime. "
        "It must exist (create it with a Directory resource first).",
        replaces=True,
        manual="install-production-agent-6.1: working directory permissions",
    )
    principal: str = prop(
        description="The account: 'IIS AppPool\\<pool>' (the pool must exist), 'CONTOSO\\svc-agent', a gMSA "
        "'CONTOSO\\svc-agent$', 'BUILTIN\\Users', or a SID 'S-1-5-...'. Compared by SID: a name and its SID "
        "are the same principal.",
        replaces=True,
        manual="agent-requirements: permissions of the account that runs the agent",
    )
    rights: list[str] = prop(
        description="FileSystemRights names: Read, ReadAndExecute, ListDirectory, Write, Modify, FullControl, "
        "or finer ones (CreateFiles, Traverse, Delete, ReadPermissions...). Compared as an access mask and "
        "shown in normalized form (['Read', 'ReadAndExecute', 'ListDirectory'] is ['ReadAndExecute']). "
        "GUI names: 'Read & execute' = ReadAndExecute; 'List folder contents' = ReadAndExecute applied to "
        "folders only (inheritance ['ContainerInherit']), not the single right ListDirectory. The manual asks "
        "ReadAndExecute on the working directory and Runtime, and Modify (6.1: FullControl) on Temp, Work "
        "and Mails.",
        manual="install-production-agent-6.1 / agent-requirements: NTFS rights",
    )
    access: Literal["Allow", "Deny"] = prop(
        "Allow",
        description="Allow or Deny. The manual's 'other permissions should be denied' means grant nothing "
        "else, not Deny entries: a Deny entry also overrides rights the account gets through its groups, and "
        "the pool identity is in BUILTIN\\Users and IIS_IUSRS. Use Deny only deliberately.",
        replaces=True,
    )
    inheritance: list[Inheritance] | None = prop(
        None,
        description="Which children inherit the entry: ContainerInherit (sub-folders), ObjectInherit (files). "
        "Default: both on a folder, none on a file (a file cannot have any).",
    )
    propagation: list[Propagation] = prop(
        [],
        description="Empty (.NET 'None'), NoPropagateInherit (children only, not grandchildren) and/or "
        "InheritOnly (children only, not this folder). Needs inheritance.",
    )

    @field_validator("path")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        return windows_absolute_path(value)

    @field_validator("principal")
    @classmethod
    def _principal(cls, value: str) -> str:
        return account_name(value)

    @field_validator("rights")
    @classmethod
    def _rights(cls, value: list[str]) -> list[str]:
        names = fs_rights.normalize_names(value)
        if not names:
            raise ValueError("grants nothing; give at least one right, e.g. ['ReadAndExecute']")
        return names

    @field_validator("inheritance")
    @classmethod
    def _inheritance(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else sorted(set(value))

    @field_validator("propagation", mode="before")
    @classmethod
    def _propagation(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, list):
            return value
        if "None" in value:
            if len(value) > 1:
                raise ValueError("'None' means no propagation flag; give it alone or give an empty list")
            return []
        if value and info.data.get("inheritance") == []:
            raise ValueError(
                f"{value} needs inheritance: an entry that no child inherits cannot be inherit-only or limited "
                "to children; set inheritance (e.g. ['ContainerInherit', 'ObjectInherit']) or remove propagation"
            )
        return sorted(set(value))

    def resource_id(self) -> str:
        return f"{self.path}|{self.principal}|{self.access}"

    def mask(self) -> int:
        return fs_rights.mask_of(self.rights)

    def script_input(self) -> dict[str, Any]:
        # The host deals in masks only: names are this module's business, so both sides agree on them.
        return {
            "path": self.path,
            "principal": self.principal,
            "access": self.access,
            "mask": self.mask(),
            "inheritance": self.inheritance,
            "propagation": self.propagation,
            **dacl_lock_input(self.connection),
        }

    def actual_from(self, state: dict[str, Any]) -> dict[str, Any]:
        """The entry the host has, in this model's terms (the default inheritance stays ``None``)."""
        entries: list[dict[str, Any]] = state.get("entries") or []
        resolved = self.resolved_inheritance(state)
        desired = {"mask": self.mask(), "inheritance": resolved, "propagation": self.propagation}
        # Several entries of this type: report one that differs, so refresh shows the drift.
        entry = next((e for e in entries if _comparable(e) != desired), entries[0])
        inheritance: list[str] | None = sorted(entry["inheritance"])
        if self.inheritance is None and inheritance == resolved:
            inheritance = None
        return {
            "rights": fs_rights.names_of(int(entry["mask"])),
            "inheritance": inheritance,
            "propagation": sorted(entry["propagation"]),
        }

    def resolved_inheritance(self, state: dict[str, Any]) -> list[str]:
        if self.inheritance is not None:
            return list(self.inheritance)
        return BOTH if state.get("is_container") else []


def _comparable(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "mask": fs_rights.normalize_mask(int(entry["mask"])),
        "inheritance": sorted(entry["inheritance"]),
        "propagation": sorted(entry["propagation"]),
    }
