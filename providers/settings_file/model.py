"""The SettingsFile properties: the single source of truth for validation, diffs, secrets and docs."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import field_validator, model_validator

from providers.framework.model import ResourceModel, prop
from providers.framework.validators import MAX_FILE_PATH, account_name, windows_absolute_path
from providers.scripting.host_locks import dacl_lock_input
from providers.settings_file.acl import readers_on_host

FileEncoding = Literal["utf-8", "utf-8-bom", "utf-16"]
UNPARSEABLE = "$unparseable_sha256"
UNREADABLE = "$unreadable"
# Why get reports no content: the file's DACL denies the deploying account (an administrator) FILE_READ_DATA.
UNREADABLE_REASON = (
    "the file's permissions do not let the Administrators read it (changed by hand); `up` sets the protected "
    "permissions first, then compares the content"
)
# set.ps1 first writes the new content to '<folder>\.<name>.<8 hex digits>.tmp' beside the file, a path 14
# characters longer than the file's own, under the same MAX_PATH (Windows PowerShell 5.1, .NET Framework).
TEMPORARY_NAME_EXTRA = len("..12345678.tmp")
MAX_SETTINGS_FILE_PATH = MAX_FILE_PATH - TEMPORARY_NAME_EXTRA
MAX_PATH_LENGTH = MAX_SETTINGS_FILE_PATH


def settings_file_path(value: str) -> str:
    """A settings file's absolute path, short enough for its temporary file, and not a backup's name."""
    path = windows_absolute_path(value, max_length=len(value))  # this resource's own limit, below
    if path.lower().endswith(".bak"):
        raise ValueError(f"{value!r} ends in .bak, the name this resource uses for backups; choose another name")
    if len(path) > MAX_SETTINGS_FILE_PATH:
        raise ValueError(
            f"is {len(path)} characters long; a settings file's path can have at most {MAX_SETTINGS_FILE_PATH}: its "
            f"temporary file '.<name>.<8 hex digits>.tmp' adds {TEMPORARY_NAME_EXTRA} and Windows PowerShell "
            f"5.1 (.NET Framework, no long paths) stops at {MAX_FILE_PATH}; choose a shorter folder or file name"
        )
    return path


class SettingsFileModel(ResourceModel):
    """One file on the host (appsettings*.json, web.config), written atomically with the previous version kept."""

    kind = "SettingsFile"

    path: str = prop(
        description="Absolute Windows path of the file, e.g. C:\\identitymanager\\Runtime\\appsettings.agent.json; at "
        f"most {MAX_SETTINGS_FILE_PATH} characters, so that the temporary file written beside it stays within "
        "MAX_PATH.",
        replaces=True,
        manual="install-agents-6.2: settings files in the Runtime folder",
    )
    content: str | None = prop(
        None,
        description="Exact text of the file (give this or json_content). Create the resource with secret=True when "
        "it holds passwords, client secrets or connection strings: then the content and its hash are secrets.",
    )
    json_content: dict[str, Any] | None = prop(
        None,
        description="The file as a JSON object (give this or content); written indented. `preview --diff` shows "
        "changes key by key; values passed as Pulumi secrets stay masked.",
        manual="install-agents-6.2: appsettings.agent.json (OpenId, OpenIdClients, Connections...)",
    )
    encoding: FileEncoding = prop(
        "utf-8",
        description="utf-8 (no byte-order mark, what .NET reads by default), utf-8-bom, "
        "or utf-16 (little endian, BOM).",
    )
    keep_backup: bool = prop(
        True,
        description="Keep the previous version as '<path>.bak' when the content changes (with the file's own "
        "permissions); otherwise it is deleted once the new content is in place. Deleted with the resource, as "
        "are temporary files ('.<name>.<hex>.tmp') an interrupted run left.",
    )
    readers: list[str] | None = prop(
        None,
        description="For a file that holds secrets: the accounts that may read it, e.g. the pool identity "
        "'IIS AppPool\\<pool>' or the service account (they must exist: make the resource depend on them). "
        "English names of well-known accounts (NT AUTHORITY\\NETWORK SERVICE, BUILTIN\\Users...) work on localized "
        "Windows too. The file then gets protected permissions: inheritance off, Full control for SYSTEM and "
        "Administrators, Read for these accounts, nothing else, owned by Administrators; set on the temporary "
        "file at its creation, so the content is never readable by others, and kept on the backup. A hand-made "
        "change (even one that locks the Administrators out of the content) shows as drift of `readers` and is "
        "repaired by `up`. None (the default): the file takes its folder's permissions.",
        manual="agent-requirements: permissions of the agent's account; other permissions should be denied",
    )

    @field_validator("path")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        return settings_file_path(value)

    @field_validator("readers")
    @classmethod
    def _readers(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        names = [account_name(item) for item in value]
        lowered = [name.lower() for name in names]
        duplicates = sorted({name for name in lowered if lowered.count(name) > 1})
        if duplicates:
            raise ValueError(f"lists {duplicates} more than once; give each account once")
        return names

    @model_validator(mode="after")
    def _one_content(self) -> SettingsFileModel:
        if (self.content is None) == (self.json_content is None):
            raise ValueError("give exactly one of 'content' (text) or 'json_content' (a JSON object)")
        return self

    def resource_id(self) -> str:
        return self.path

    def file_text(self) -> str:
        if self.json_content is not None:
            # Sorted: Pulumi hands objects over in no particular order, and the file must not churn.
            return json.dumps(self.json_content, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        assert self.content is not None
        return self.content

    def script_input(self) -> dict[str, Any]:
        # The host only ever sees text: JSON is rendered here so Get/Set stay one simple script family.
        return {
            "path": self.path,
            "content": self.file_text(),
            "encoding": self.encoding,
            "keep_backup": self.keep_backup,
            "readers": self.readers,
            **dacl_lock_input(self.connection),
        }

    def actual_from(self, state: dict[str, Any]) -> dict[str, Any]:
        """The content properties as the host has them, in the form this resource declares them."""
        text = state.get("content")
        # An unreadable file's encoding is unknown too: the declared one stands, the content shows the difference.
        actual: dict[str, Any] = {"encoding": state.get("encoding") or self.encoding}
        if self.readers is not None:
            sids = state.get("reader_sids") or []
            actual["readers"] = readers_on_host(self.readers, sids, state.get("acl"), state.get("backup_acl"))
        if state.get("content_readable") is False:
            # Content unknown, never assumed unchanged: refresh shows it next to the readers that explain it.
            if self.json_content is None:
                actual["content"] = f"<{UNREADABLE_REASON}>"
            else:
                actual["json_content"] = {UNREADABLE: UNREADABLE_REASON}
            return actual
        if self.json_content is None:
            actual["content"] = text
            return actual
        try:
            parsed = json.loads(text or "")
        except json.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            # Never echo the text: it may hold secrets. The hash is enough to show that it differs.
            parsed = {UNPARSEABLE: hashlib.sha256((text or "").encode()).hexdigest()}
        actual["json_content"] = parsed
        return actual
