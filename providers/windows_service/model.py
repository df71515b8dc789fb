"""The WindowsService properties: the single source of truth for validation, diffs, secrets and docs."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from providers.framework.model import ResourceModel, prop
from providers.framework.validators import windows_absolute_path

StartType = Literal["Automatic", "AutomaticDelayedStart", "Manual", "Disabled"]
ServiceState = Literal["Running", "Stopped"]
FailureActionKind = Literal["Restart", "None", "Reboot"]

# Accounts the service control manager knows without a password, by the name Win32_Service uses.
BUILTIN_ACCOUNTS = {
    "localsystem": "LocalSystem",
    "nt authority\\system": "LocalSystem",
    "networkservice": "NetworkService",
    "nt authority\\networkservice": "NetworkService",
    "nt authority\\network service": "NetworkService",
    "localservice": "LocalService",
    "nt authority\\localservice": "LocalService",
    "nt authority\\local service": "LocalService",
}
_ACCOUNT = re.compile(r"^(?P<domain>[^\\/@\s][^\\/@]*)\\(?P<name>[^\\/@\s][^\\/@]*)$")
_NAME_FORBIDDEN = re.compile(r"[\\/\x00-\x1f]")
# CommandLineToArgvW needs quoting for these (and for the empty string).
_NEEDS_QUOTES = re.compile(r'[\s"]')


def quote_argument(argument: str) -> str:
    """Quote one argument so the program's C runtime (CommandLineToArgvW rules) reads it back unchanged."""
    if argument and not _NEEDS_QUOTES.search(argument):
        return argument
    quoted, backslashes = '"', 0
    for char in argument:
        if char == "\\":
            backslashes += 1
            continue
        if char == '"':
            quoted += "\\" * (2 * backslashes + 1) + '"'
        else:
            quoted += "\\" * backslashes + char
        backslashes = 0
    return quoted + "\\" * (2 * backslashes) + '"'


def split_image_path(image_path: str) -> tuple[str, list[str]]:
    """Executable and arguments of an ImagePath, read as CommandLineToArgvW reads a command line."""
    text = image_path.strip()
    if text.startswith('"'):
        end = text.find('"', 1)
        end = len(text) if end < 0 else end
        executable, rest = text[1:end], text[end + 1 :]
    else:
        executable, _, rest = text.partition(" ")
    arguments: list[str] = []
    current, in_quotes, has_token, index = "", False, False, 0
    while index < len(rest):
        char = rest[index]
        if char == "\\":
            run = len(rest[index:]) - len(rest[index:].lstrip("\\"))
            if index + run < len(rest) and rest[index + run] == '"':
                current += "\\" * (run // 2)
                if run % 2:
                    current += '"'
                    index += run + 1
                    has_token = True
                    continue
                index += run
                continue
            current += "\\" * run
            index += run
            has_token = True
            continue
        if char == '"':
            in_quotes, has_token = not in_quotes, True
        elif char.isspace() and not in_quotes:
            if has_token:
                arguments.append(current)
            current, has_token = "", False
        else:
            current, has_token = current + char, True
        index += 1
    if has_token:
        arguments.append(current)
    return executable, arguments


def service_name(value: str) -> str:
    """A service (key) name the service control manager accepts (CreateService: at most 256 characters,
    '/' and '\\' are invalid)."""
    if not value or len(value) > 256:
        raise ValueError(f"{value!r}: a service name has 1 to 256 characters")
    if _NAME_FORBIDDEN.search(value):
        raise ValueError(f"{value!r}: '/' and '\\' (and control characters) are not allowed in a service name")
    if value.strip() != value:
        raise ValueError(f"{value!r} starts or ends with a space; remove it")
    return value


def service_account(value: str) -> str:
    """The account a service runs as: a built-in one (by the name Win32_Service uses) or DOMAIN\\user."""
    builtin = BUILTIN_ACCOUNTS.get(value.lower())
    if builtin:
        return builtin
    if "@" in value:
        raise ValueError(f"{value!r}: give the account as DOMAIN\\user, not as user@domain")
    if not _ACCOUNT.match(value):
        raise ValueError(
            f"{value!r} is not LocalSystem, NetworkService, LocalService or DOMAIN\\user "
            "(a group managed service account is DOMAIN\\name$; a local account is .\\user)"
        )
    return value


class FailureAction(BaseModel):
    """What the service control manager does after one failure of the service."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: FailureActionKind = Field(description="Restart (the service), Reboot (the computer) or None.")
    delay_seconds: int = Field(ge=0, le=86400, description="Wait before the action, in seconds.")


class FailureActions(BaseModel):
    """The service's recovery settings (services.msc 'Recovery' tab)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    actions: list[FailureAction] = Field(
        min_length=0,
        max_length=8,
        description="Action after the 1st, 2nd, ... failure; Windows repeats the last one for later failures.",
    )
    reset_period_seconds: int = Field(
        ge=0, le=2_147_483, description="Seconds without failure after which the failure count restarts at 0."
    )

    @model_validator(mode="after")
    def _no_reset_without_actions(self) -> FailureActions:
        # Windows deletes the reset period together with the actions when there are none
        # (learn.microsoft.com SERVICE_FAILURE_ACTIONS: "If this value is 0, but lpsaActions is not
        # NULL, the reset period and array of failure actions are deleted"), so a reset period
        # without actions could never be read back: it would be drift on every refresh.
        if not self.actions and self.reset_period_seconds:
            raise ValueError(
                "reset_period_seconds has no effect without actions (Windows deletes it with them); set it to 0"
            )
        return self


DEFAULT_FAILURE_ACTIONS = FailureActions(
    actions=[
        FailureAction(action="Restart", delay_seconds=60),
        FailureAction(action="Restart", delay_seconds=60),
        FailureAction(action="None", delay_seconds=0),
    ],
    reset_period_seconds=86400,
)


class WindowsServiceModel(ResourceModel):
    """A Windows service that runs the agent executable (the alternative to IIS hosting)."""

    kind = "WindowsService"

    name: str = prop(
        description="Service (key) name, e.g. UsercubeAgentContoso; at most 256 characters, no '/' or '\\'.",
        replaces=True,
        manual="install-agents-6.2: sc.exe create <name>",
    )
    display_name: str | None = prop(
        None, description="Name shown in services.msc; defaults to the service name.", manual="sc.exe displayname="
    )
    binary_path: str = prop(
        description="Absolute path of the executable, e.g. C:\\identitymanagerContoso\\Runtime\\Usercube-Agent.exe; "
        "always written quoted in the ImagePath.",
        manual="install-agents-6.2: sc.exe binpath=",
    )
    arguments: list[str] = prop(
        ["--service"],
        description="Arguments after the executable; the agent runs as a service with --service. Each is quoted "
        "when needed.",
        manual='install-agents-6.2: binpath= "...\\Usercube-Agent.exe --service"',
    )
    start_type: StartType = prop(
        "Automatic", description="Automatic, AutomaticDelayedStart, Manual or Disabled.", manual="sc.exe start= auto"
    )
    account: str = prop(
        "LocalSystem",
        description="LocalSystem, NetworkService, LocalService, DOMAIN\\user (with password) or a group managed "
        "service account DOMAIN\\name$ (no password).",
        manual="install-agents-6.2: sc.exe obj= <DOMAIN\\USER>",
    )
    password: str | None = prop(
        None,
        description="Password of a DOMAIN\\user account. Windows cannot give it back: a change is applied once, "
        "and refresh never reports it as drift. Never placed on a command line.",
        secret=True,
        manual="install-agents-6.2: sc.exe password=",
    )
    description: str = prop("", description="Description shown in services.msc (empty: none).")
    failure_actions: FailureActions = prop(
        DEFAULT_FAILURE_ACTIONS,
        description="Recovery: actions [{action: Restart/None/Reboot, delay_seconds}] and reset_period_seconds; "
        "default restart after 60 s twice, then nothing, counter reset after a day.",
    )
    state: ServiceState = prop("Running", description="Running or Stopped.")
    owner: str = prop(
        "",
        description="Set by the resource, not by you: the id (organization and URN) it writes under the service's "
        "registry key right after creating it. A create adopts an existing service only when it carries this id, "
        "or when it is the one this resource's interrupted create left; a service installed by hand (the manual's "
        "`sc.exe create`) is refused with ServiceExists. Destroy deletes only a service carrying this id (or, for a "
        "state from before the id was recorded, one carrying none). A new id (a renamed stack or resource, or such an "
        "older state) is an update that writes it.",
    )

    @field_validator("name")
    @classmethod
    def _service_name(cls, value: str) -> str:
        return service_name(value)

    @field_validator("display_name")
    @classmethod
    def _display_name(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or len(value) > 256):
            raise ValueError(f"{value!r}: give 1 to 256 characters, or leave it out to use the service name")
        return value

    @field_validator("binary_path")
    @classmethod
    def _binary_path(cls, value: str) -> str:
        path = windows_absolute_path(value)
        if not path.lower().endswith(".exe"):
            raise ValueError(
                f"{value!r} is not an executable; give the full path of the .exe (arguments go in 'arguments')"
            )
        return path

    @field_validator("arguments")
    @classmethod
    def _arguments(cls, value: list[str]) -> list[str]:
        for argument in value:
            if "\x00" in argument or "\n" in argument or "\r" in argument:
                raise ValueError(f"argument {argument!r} contains a line break or NUL, which an ImagePath cannot hold")
        return value

    @field_validator("account")
    @classmethod
    def _account(cls, value: str) -> str:
        return service_account(value)

    @model_validator(mode="after")
    def _password_fits_account(self) -> WindowsServiceModel:
        if self.account in BUILTIN_ACCOUNTS.values():
            if self.password is not None:
                raise ValueError(f"password: {self.account} has no password; remove 'password'")
        elif self.is_gmsa():
            if self.password is not None:
                raise ValueError(
                    f"password: {self.account} is a group managed service account; Windows fetches its password "
                    "from the domain, remove 'password'"
                )
        elif not self.password:
            raise ValueError(f"password: {self.account} needs its password (pass it as a Pulumi secret)")
        if self.state == "Running" and self.start_type == "Disabled":
            raise ValueError("state: a Disabled service cannot be Running; set state 'Stopped' or another start_type")
        return self

    def is_gmsa(self) -> bool:
        return self.account.endswith("$")

    def image_path(self) -> str:
        # The executable is always quoted: an unquoted path with spaces is ambiguous to CreateProcess
        # (the 'unquoted service path' weakness), and quoting a path without spaces is harmless.
        return " ".join([f'"{self.binary_path}"', *(quote_argument(a) for a in self.arguments)])

    def resource_id(self) -> str:
        return self.name

    def script_input(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "display_name": self.display_name or self.name,
            "image_path": self.image_path(),
            "start_type": self.start_type,
            "account": self.account,
            "password": self.password,
            "apply_password": False,
            "create": False,
            "description": self.description,
            "failure_actions": self.failure_actions.model_dump(mode="json"),
            "state": self.state,
            "owner": self.owner,
            "previous_owner": "",
        }

    def actual_from(self, state: dict[str, Any]) -> dict[str, Any]:
        """The desired properties as the host has them; never the password, which Windows cannot return."""
        actual: dict[str, Any] = {
            "display_name": state.get("display_name"),
            "start_type": state.get("start_type"),
            "description": state.get("description") or "",
            "failure_actions": state.get("failure_actions"),
            "state": state.get("state"),
        }
        if actual["display_name"] == self.name and self.display_name is None:
            actual["display_name"] = None
        account = str(state.get("account") or "")
        actual["account"] = self.account if account.lower() == self.account.lower() else account
        image_path = str(state.get("image_path") or "")
        if image_path != self.image_path():
            actual["binary_path"], actual["arguments"] = split_image_path(image_path)
        return actual
