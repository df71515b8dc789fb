"""An estate of SIMULATED Windows hosts and a copy of the project whose stacks point at them.

The example stacks describe hosts by name; the tests start one simulated host per name (each on
its own loopback address, as real hosts look), copy the project (Pulumi.yaml, __main__.py, one
stack file) into a temporary directory with the hosts' addresses and ports rewritten, and run the
real `pulumi` CLI on it. The secrets stay as the stack file holds them, encrypted.
"""

from __future__ import annotations

import copy
import json
import runpy
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pulumi import automation as auto

from devhost import accounts, features, https, iis
from stackrun.cli import main as stackrun_main
from stackrun.workspace import LOCAL_DEV_PASSPHRASE, PROJECT, ROOT, open_stack
from tests.support.hosts import Target, start_simulator, stop_simulator

# The password the local stack holds (encrypted) for every simulated host: dev-only.
LOCAL_HOST_PASSWORD = "DevHost-Only-Passw0rd"
EXAMPLE_PASSPHRASE = "example-passphrase-not-for-production"
HOSTS_KEY = f"{PROJECT}:hosts"
AGENTS_KEY = f"{PROJECT}:agents"


@dataclass
class SimulatedEstate:
    """One simulated host per host name, prepared as the manual's prerequisites leave a server."""

    hosts: dict[str, Target]

    def marks(self) -> dict[str, int]:
        return {name: host.journal_mark() for name, host in self.hosts.items()}

    def commands_since(self, marks: dict[str, int]) -> dict[str, int]:
        """Process starts and operations each host received since ``marks`` (0 everywhere: nothing touched
        any host)."""
        return {
            name: sum(1 for e in host.journal_since(marks[name]) if e.get("kind") in ("command", "operation"))
            for name, host in self.hosts.items()
        }

    def operations(self, host: str, mark: int) -> list[tuple[float, str]]:
        """(time, ``# op:`` name) of every script ``host`` ran since ``mark``."""
        return self.hosts[host].timed_operations_since(mark)

    def simulator_file(self, host: str, name: str) -> Path:
        """A file of the simulator's own model (services, features), under ``_sim``."""
        state = self.hosts[host].state_dir
        assert state is not None
        return state / "_sim" / name

    def file(self, host: str, windows_path: str) -> Path:
        return self.hosts[host].windows_file(windows_path)


def start_estate(root: Path, names: list[str], first_address: int = 2) -> Iterator[SimulatedEstate]:
    yield from start_estate_at(root, {name: (f"127.0.0.{first_address + i}", 0) for i, name in enumerate(names)})


def start_estate_at(root: Path, places: dict[str, tuple[str, int]]) -> Iterator[SimulatedEstate]:
    """One simulated host per name, each on its (address, HTTP port); port 0: a free one."""
    hosts: dict[str, Target] = {}
    try:
        for name, (address, port) in places.items():
            target = start_simulator(root / name, LOCAL_HOST_PASSWORD, address, http_port=port)
            _prepare(target)
            hosts[name] = target
        yield SimulatedEstate(hosts)
    finally:
        for target in hosts.values():
            stop_simulator(target)


def _prepare(target: Target) -> None:
    """IIS, then the .NET 8 hosting bundle (the manual's prerequisites), the domain's gMSAs, and the
    agent runtime (extracted by the operator, as when the stack names no runtimeArchive): the stand-ins
    of the agent's and the server's main files and of the service executable."""
    assert target.state_dir is not None
    features.install(target.state_dir, ["Web-Server"])
    iis.install_hosting_bundle(target.state_dir, "8.0.11")
    for account in ("CONTOSO\\svc-agent-b$", "CONTOSO\\gmsa-idm-paris$", "CONTOSO\\gmsa-idm-dmz$"):
        accounts.add_account(target.state_dir, account, "gmsa")
    for org in ("Contoso", "Fabrikam"):
        for app in ("Usercube-Agent.exe", "identitymanager-Agent.dll", "identitymanager-Server.dll"):
            https.write_stand_in_runtime(target.state_dir, f"C:\\identitymanager{org}\\Runtime", app)


@dataclass
class EstateProject:
    """A copy of the project with one stack whose hosts are the simulated estate's."""

    root: Path
    estate: SimulatedEstate
    source: str = "local"
    stack: str = "local"
    passphrase: str = LOCAL_DEV_PASSPHRASE
    runs: int = field(default=0)

    def __post_init__(self) -> None:
        self.project = self.root / "project"
        (self.project / "stacks").mkdir(parents=True, exist_ok=True)
        project_file = yaml.safe_load((ROOT / "Pulumi.yaml").read_text(encoding="utf-8"))
        for plugin in project_file.get("plugins", {}).get("providers", []):
            # Relative to the repository; a copy of the plugin here would put a `providers` folder in the
            # project directory (the plugin's working directory), shadowing the `providers` package.
            plugin["path"] = str(ROOT / plugin["path"])
        (self.project / "Pulumi.yaml").write_text(yaml.safe_dump(project_file, sort_keys=False), encoding="utf-8")
        shutil.copy(ROOT / "__main__.py", self.project / "__main__.py")
        self.backend = self.root / "backend"
        self.backend.mkdir(exist_ok=True)
        document = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{self.source}.yaml").read_text(encoding="utf-8"))
        for name, host in document["config"][HOSTS_KEY].items():
            target = self.estate.hosts[name]
            host.update(address=target.connection["host"], port=target.connection["port"], useHttps=False)
            if self.source != "local":  # the example estates' hosts have passwords of their own
                host["user"] = target.connection["username"]
        self.document = document

    @property
    def stack_file(self) -> Path:
        return self.project / "stacks" / f"Pulumi.{self.stack}.yaml"

    # -- the stack file, as a user edits it ------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """A deep copy of the stack's ``config`` section, to change and give back to ``write``."""
        return copy.deepcopy(self.document["config"])

    def write(self, config: dict[str, Any] | None = None) -> None:
        document = {**self.document, "config": config if config is not None else self.document["config"]}
        self.stack_file.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")

    def set_secret(self, path: str, value: str) -> None:
        """`pulumi config set --secret --path <path>` on this stack (the stack file is then re-read)."""
        if not self.stack_file.exists():
            self.write()
        stack = open_stack(
            self.stack,
            self.program,
            work_dir=self.project,
            extra_env={"PULUMI_BACKEND_URL": f"file://{self.backend}", "PULUMI_CONFIG_PASSPHRASE": self.passphrase},
        )
        stack.set_config(f"{PROJECT}:{path}", auto.ConfigValue(value, secret=True), path=True)
        self.document = yaml.safe_load(self.stack_file.read_text(encoding="utf-8"))

    # -- the CLI ---------------------------------------------------------------------------------

    def program(self) -> None:
        runpy.run_path(str(self.project / "__main__.py"), run_name="__main__")

    def run(self, *argv: str) -> tuple[int, str]:
        """``python -m stackrun <argv>`` on this project; (exit code, everything it printed)."""
        if not self.stack_file.exists():
            self.write()
        self.runs += 1
        log = self.root / f"run{self.runs}.txt"
        with log.open("w", encoding="utf-8") as out:
            code = stackrun_main(
                [*argv, "--stack", self.stack],
                program=self.program,
                work_dir=self.project,
                extra_env={"PULUMI_BACKEND_URL": f"file://{self.backend}", "PULUMI_CONFIG_PASSPHRASE": self.passphrase},
                stdout=out,
                stderr=out,
            )
        return code, log.read_text(encoding="utf-8")

    def preview_steps(self) -> list[dict[str, Any]]:
        """The steps of `preview --json` (unchanged resources left out, as the CLI does)."""
        code, text = self.run("preview", "--json")
        assert code == 0, text
        return list(json.loads(text[text.index("{") :])["steps"])

    def outputs(self) -> dict[str, Any]:
        checkpoint = self.backend / ".pulumi" / "stacks" / PROJECT / f"{self.stack}.json"
        resources = json.loads(checkpoint.read_text())["checkpoint"]["latest"]["resources"]
        stack = next(r for r in resources if r["type"] == "pulumi:pulumi:Stack")
        return dict(stack.get("outputs") or {})
