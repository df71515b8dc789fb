"""The stack loader on its own (no engine): hand-made estates, decrypted values plus the stack file.

``load_from(raw, stack_file_config, stack, project_dir)`` takes what the engine hands the program
(``raw``, decrypted) and the stack file's ``config`` section, where a secret is ``{secure: ...}``.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import secrets
import zipfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from components.stack import ConfigError, Estate, load_from
from components.stack.errors import Problem, key_path
from tests.providers.test_certificate_engine import make_pfx, rsa_key
from tests.support.zips import write_zip

PROJECT_DIR = Path(__file__).resolve().parents[2]
STACK = "dev"


class Secret(str):
    """A value the stack file holds encrypted (``pulumi config set --secret --path``)."""

    __slots__ = ()


@cache
def pfx(key_size: int = 2048, expired: bool = False) -> tuple[Secret, Secret]:
    """A self-signed PFX (base64) and its password; made once per module and kind."""
    password = secrets.token_urlsafe(18)
    validity = {"valid_from_days": -60, "valid_days": 30} if expired else {}
    return Secret(make_pfx(password=password, key=rsa_key(key_size), **validity)), Secret(password)


def certificate(**kind: Any) -> dict[str, Secret]:
    data, password = pfx(**kind)
    return {"pfx": data, "password": password}


def estate() -> dict[str, Any]:
    """One host with a production agent: every kind of secret, and a managed system."""
    return {
        "hosts": {
            "main": {
                "address": "agent.contoso.example",
                "user": "CONTOSO\\deploy",
                "password": Secret("Host-Pw-1234567"),
            }
        },
        "agents": [
            {
                "name": "main",
                "kind": "production",
                "host": "main",
                "organization": "Contoso",
                "hostName": "agent.contoso.example",
                "sslCertificate": certificate(),
                "encryptionCertificate": certificate(),
                "settings": {
                    "agentIdentifier": "Contoso-main",
                    "applicationUri": "https://identitymanager.contoso.example",
                    "openIdClients": {"Job": Secret("Job-Client-Secret-0987")},
                    "connections": {
                        "ADExport": {
                            "Login": "CONTOSO\\svc-ad-export",
                            "Password": Secret("AD-Export-Pw-5555"),
                            "Servers": [{"Server": "dc01.contoso.example"}],
                        }
                    },
                },
            }
        ],
    }


def stack_file(raw: dict[str, Any]) -> dict[str, Any]:
    """The stack file's ``config`` section for ``raw``: each ``Secret`` written as ``{secure: ...}``."""

    def encrypt(value: Any) -> Any:
        if isinstance(value, Secret):
            return {"secure": "v1:x"}
        if isinstance(value, dict):
            return {key: encrypt(item) for key, item in value.items()}
        if isinstance(value, list):
            return [encrypt(item) for item in value]
        return value

    return {f"usercube-agents:{key}": encrypt(value) for key, value in raw.items()}


def secret_values(value: Any) -> list[str]:
    if isinstance(value, Secret):
        return [str(value)]
    if isinstance(value, dict):
        return [found for item in value.values() for found in secret_values(item)]
    if isinstance(value, list):
        return [found for item in value for found in secret_values(item)]
    return []


def load(raw: dict[str, Any], config: dict[str, Any] | None = None) -> Estate:
    return load_from(copy.deepcopy(raw), config if config is not None else stack_file(raw), STACK, PROJECT_DIR)


def refused(raw: dict[str, Any], config: dict[str, Any] | None = None) -> list[Problem]:
    """The problems of ``raw``; none of them may show a secret's value."""
    with pytest.raises(ConfigError) as caught:
        load(raw, config)
    text = str(caught.value)
    assert not [value for value in secret_values(raw) if value in text], text
    return caught.value.problems


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, problems
    return problems[0]


def change(edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    raw = estate()
    edit(raw)
    return raw


# -- a valid estate -------------------------------------------------------------------------------


def test_a_valid_estate_loads_with_its_secret_paths() -> None:
    loaded = load(estate())
    agent = loaded.spec.agents[0]
    assert (agent.name, agent.host, agent.root) == ("main", "main", "C:\\identitymanagerContoso")
    assert agent.settings.default_client == "Job"
    assert loaded.stack == STACK
    for secret in (
        ("hosts", "main", "password"),
        ("agents", 0, "settings", "openIdClients", "Job"),
        ("agents", 0, "settings", "connections", "ADExport", "Password"),
        ("agents", 0, "encryptionCertificate", "pfx"),
        ["agents", 0, "sslCertificate", "password"],  # any sequence
    ):
        assert loaded.is_secret(secret), secret
    for plain in (
        ("agents", 0, "hostName"),
        ("agents", 0, "settings", "openIdClients"),
        ("agents", 0, "settings", "connections", "ADExport", "Login"),
        ("hosts", "main", "user"),
    ):
        assert not loaded.is_secret(plain), plain


def test_parallel_operations_per_host_reach_the_connection_only_when_set() -> None:
    from providers.transport.connection import HostConnection

    default = load(estate()).spec.hosts["main"].connection("pw")
    assert "max_parallel_operations" not in default, "the default adds no key every resource would show as changed"
    assert HostConnection.model_validate(default).max_parallel_operations == 8
    raw = change(lambda r: r["hosts"]["main"].update(maxParallelOperations=2))
    assert load(raw).spec.hosts["main"].connection("pw")["max_parallel_operations"] == 2
    too_many = only(refused(change(lambda r: r["hosts"]["main"].update(maxParallelOperations=64))))
    assert "maxParallelOperations" in str(too_many)


def test_the_command_time_out_per_host_reaches_the_connection_only_when_set() -> None:
    # The scripts' messages of a wait cut short tell to raise command_timeout_s: a stack sets it here.
    from providers.transport.connection import HostConnection

    default = load(estate()).spec.hosts["main"].connection("pw")
    assert "command_timeout_s" not in default, "the default adds no key every resource would show as changed"
    assert HostConnection.model_validate(default).command_timeout_s == 600
    raw = change(lambda r: r["hosts"]["main"].update(commandTimeoutS=1800))
    connection = load(raw).spec.hosts["main"].connection("pw")
    assert HostConnection.model_validate(connection).command_timeout_s == 1800
    too_short = only(refused(change(lambda r: r["hosts"]["main"].update(commandTimeoutS=5))))
    assert "hosts.main.commandTimeoutS" in str(too_short) and "30" in str(too_short)


def test_a_managed_system_value_may_be_encrypted_and_is_then_a_secret() -> None:
    raw = change(lambda r: r["agents"][0]["settings"]["connections"]["ADExport"].update(Login=Secret("CONTOSO\\x")))
    assert load(raw).is_secret(("agents", 0, "settings", "connections", "ADExport", "Login"))


# -- certificates, checked locally ------------------------------------------------------------------


def test_a_weak_pfx_is_refused_naming_its_key_path() -> None:
    raw = change(lambda r: r["agents"][0].update(encryptionCertificate=certificate(key_size=1024)))
    problem = only(refused(raw))
    assert problem.path == "agents[0].encryptionCertificate.pfx"
    assert "holds an RSA-1024 key; the manual requires RSA-2048 or larger" in problem.message
    assert "openssl req -x509 -newkey rsa:2048 -sha256" in problem.message


def test_an_expired_pfx_is_refused_naming_its_key_path() -> None:
    raw = change(lambda r: r["agents"][0].update(encryptionCertificate=certificate(expired=True)))
    problem = only(refused(raw))
    assert problem.path == "agents[0].encryptionCertificate.pfx"
    assert "holds a certificate that expired on " in problem.message


def test_a_wrong_pfx_password_names_the_password() -> None:
    wrong = {"pfx": pfx()[0], "password": Secret("Not-The-Export-Password")}
    problem = only(refused(change(lambda r: r["agents"][0].update(encryptionCertificate=wrong))))
    assert problem.path == "agents[0].encryptionCertificate.password"
    assert "could not be decrypted with this password; give the password it was exported with" in problem.message
    assert "pfx_password" not in problem.message


def test_bytes_that_are_no_pfx_are_refused() -> None:
    garbage = {"pfx": Secret(base64.b64encode(b"not a pfx at all, sorry").decode()), "password": Secret("Pw-123456")}
    problem = only(refused(change(lambda r: r["agents"][0].update(sslCertificate=garbage))))
    assert problem.path == "agents[0].sslCertificate.pfx"
    assert "is not a PFX (PKCS#12) file" in problem.message


# -- the runtime archive, checked locally ------------------------------------------------------------


def small_zip(folder: Path, name: str = "runtime.zip") -> Path:
    path = folder / name
    return write_zip(path, {"identitymanager-Agent.dll": b"MZ agent"}, zipfile.ZIP_STORED)


def with_archive(archive: dict[str, Any]) -> dict[str, Any]:
    return change(lambda r: r["agents"][0].update(runtimeArchive=archive))


def test_a_runtime_archive_with_its_sha256_loads(tmp_path: Path) -> None:
    path = small_zip(tmp_path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    loaded = load(with_archive({"path": str(path), "sha256": digest.upper()}))
    archive = loaded.spec.agents[0].runtime_archive
    assert archive is not None and archive.sha256 == digest  # normalized to lower case


def test_a_relative_archive_path_starts_at_the_project_directory(tmp_path: Path) -> None:
    small_zip(tmp_path, "vendor.zip")
    raw = with_archive({"path": "vendor.zip"})
    loaded = load_from(copy.deepcopy(raw), stack_file(raw), STACK, tmp_path)
    assert loaded.spec.agents[0].runtime_archive is not None
    assert only(refused(raw)).path == "agents[0].runtimeArchive.path"  # not in the repository root


def test_a_wrong_archive_sha256_is_refused_naming_the_key_and_both_hashes(tmp_path: Path) -> None:
    path = small_zip(tmp_path)
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    problem = only(refused(with_archive({"path": str(path), "sha256": "ab" * 32})))
    assert problem.path == "agents[0].runtimeArchive.sha256"
    assert f"runtime.zip has SHA-256 {actual}, not the {'ab' * 32} the stack expects" in problem.message


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "does not exist"), (b"", "is empty"), (b"PK but not really a zip", "is not a zip archive")],
)
def test_a_missing_or_broken_archive_is_refused_naming_its_path(
    tmp_path: Path, content: bytes | None, reason: str
) -> None:
    path = tmp_path / "runtime.zip"
    if content is not None:
        path.write_bytes(content)
    problem = only(refused(with_archive({"path": str(path)})))
    assert problem.path == "agents[0].runtimeArchive.path"
    assert reason in problem.message


def test_an_archive_sha256_that_is_no_sha256_is_refused(tmp_path: Path) -> None:
    problem = only(refused(with_archive({"path": str(small_zip(tmp_path)), "sha256": "1234"})))
    assert problem.path == "agents[0].runtimeArchive.sha256"
    assert "is not a SHA-256: give 64 hexadecimal digits" in problem.message


# -- secrets ----------------------------------------------------------------------------------------


def test_a_plain_text_secret_prints_the_command_that_encrypts_it_but_not_the_value() -> None:
    raw = estate()
    config = stack_file(raw)
    config["usercube-agents:agents"][0]["settings"]["openIdClients"]["Job"] = "Job-Client-Secret-0987"
    problem = only(refused(raw, config))
    assert problem.path == "agents[0].settings.openIdClients.Job"
    assert (
        "must be a secret but is stored in plain text; encrypt it with "
        "`pulumi config set --stack dev --secret --path 'agents[0].settings.openIdClients.Job'`" in problem.message
    )


def test_an_encrypted_value_that_is_not_a_secret_is_reported_once_and_never_shown() -> None:
    """hostName encrypted: the schema would also refuse it, echoing the value; one message, no value."""
    raw = change(lambda r: r["agents"][0].update(hostName=Secret("Not-A-Dns-Name-Secret")))
    problem = only(refused(raw))
    assert problem.path == "agents[0].hostName"
    assert "is encrypted but is not a secret" in problem.message
    assert "`pulumi config set --stack dev --path 'agents[0].hostName' <value>`" in problem.message


def test_an_encrypted_value_echoed_under_another_key_is_masked() -> None:
    def two_agents(raw: dict[str, Any]) -> None:
        second = copy.deepcopy(raw["agents"][0])
        second.update(name="two", workingDirectory="C:\\two", siteName="Two", poolName="Two")
        second["settings"]["agentIdentifier"] = "Contoso-two"
        second["hostName"] = Secret("agent.contoso.example")  # same binding as agents[0], but encrypted
        raw["agents"].append(second)

    problems = refused(change(two_agents))
    assert [p.path for p in problems] == ["agents[1].hostName", "agents[1].httpsPort"]
    assert problems[1].message.startswith("binding *:443:[secret] on host 'main' is also used by agents[0]")


def test_hosts_encrypted_as_a_whole_are_refused() -> None:
    raw = estate()
    config = stack_file(raw)
    config["usercube-agents:hosts"] = {"secure": "v1:x"}
    problem = only(refused(raw, config))
    assert problem.path == "hosts"
    assert "is encrypted as a whole" in problem.message
    assert "`pulumi config set --stack dev --secret --path '<path>'`" in problem.message


def test_a_winrm_error_never_shows_the_host_password() -> None:
    problem = only(refused(change(lambda r: r["hosts"]["main"].update(transport="basic", useHttps=False))))
    assert problem.path == "hosts.main.transport"
    assert problem.message.startswith("transport 'basic' over plain HTTP would send the password readable")
    assert "set useHttps: true" in problem.message


# -- key paths and typos ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("loc", "path"),
    [
        (("agents", 1, "hostName"), "agents[1].hostName"),
        (("hosts", "my.host"), 'hosts["my.host"]'),
        (("hosts", "my.host", "password"), 'hosts["my.host"].password'),
        (
            ("agents", 0, "settings", "connections", "AD Export", "Password"),
            'agents[0].settings.connections["AD Export"].Password',
        ),
        (("agents", 0, "settings", "openIdClients", "Job"), "agents[0].settings.openIdClients.Job"),
        (("hosts", "zone-a", "user"), "hosts.zone-a.user"),
        (("agents", 0, "settings", "connections", "9lives"), 'agents[0].settings.connections["9lives"]'),
        (("agentz",), "agentz"),
        ((), ""),
    ],
)
def test_key_path(loc: tuple[str | int, ...], path: str) -> None:
    assert key_path(loc) == path


def test_an_odd_key_is_quoted_in_messages_as_pulumi_config_set_path_takes_it() -> None:
    def odd(raw: dict[str, Any]) -> None:
        connections = raw["agents"][0]["settings"]["connections"]
        connections["AD.Export"] = connections.pop("ADExport")

    raw = change(odd)
    config = stack_file(raw)
    config["usercube-agents:agents"][0]["settings"]["connections"]["AD.Export"]["Password"] = "AD-Export-Pw-5555"
    problem = only(refused(raw, config))
    assert problem.path == 'agents[0].settings.connections["AD.Export"].Password'
    assert f"--secret --path '{problem.path}'" in problem.message


def test_a_host_name_that_cannot_name_resources_is_refused() -> None:
    def dotted(raw: dict[str, Any]) -> None:
        raw["hosts"]["my.host"] = raw["hosts"].pop("main")
        raw["agents"][0]["host"] = "my.host"

    problem = only(refused(change(dotted)))
    assert problem.path == "hosts"
    assert "host name 'my.host': use letters, digits and '-'" in problem.message


@pytest.mark.parametrize(
    ("edit", "path", "hint"),
    [
        (lambda r: r["agents"][0].update(hostname="x"), "agents[0].hostname", "did you mean 'hostName'?"),
        (
            lambda r: r["agents"][0]["settings"].update(applicationUrl="x"),
            "agents[0].settings.applicationUrl",
            "'applicationUri'",
        ),
        (lambda r: r["hosts"]["main"].update(adress="x"), "hosts.main.adress", "did you mean 'address'?"),
        (lambda r: r["agents"][0].update(identity={"knid": "User"}), "agents[0].identity.knid", "did you mean 'kind'?"),
        (
            lambda r: r["agents"][0]["sslCertificate"].update(pxf="x"),
            "agents[0].sslCertificate.pxf",
            "did you mean 'pfx'?",
        ),
        (lambda r: r["agents"][0].update(zzz=1), "agents[0].zzz", "valid keys: name, kind, host, organization"),
    ],
)
def test_a_typo_suggests_the_nearest_key(edit: Callable[[dict[str, Any]], None], path: str, hint: str) -> None:
    problem = only(refused(change(edit)))
    assert problem.path == path
    assert problem.message.startswith("is not a known key; ")
    assert hint in problem.message


def test_stack_keys_outside_hosts_and_agents() -> None:
    raw = estate()
    config = {
        **stack_file(raw),
        "usercube-agents:hots": {},
        "usercube-agents:winrmUser": "CONTOSO\\deploy",
        "aws:region": "eu-west-1",  # another package's setting: not ours to judge
    }
    problems = refused(raw, config)
    assert [p.path for p in problems] == ["hots", "winrmUser"]
    assert "did you mean 'hosts'?" in problems[0].message
    assert "is a key of the one-agent layout, replaced by `hosts` and `agents`" in problems[1].message


def test_missing_agents_and_missing_keys_say_what_to_give() -> None:
    raw = estate()
    del raw["agents"]
    problem = only(refused(raw))  # once, though both the stack keys and the schema miss it
    assert problem.path == "agents"
    assert problem.message.startswith("is required: describe the environment's hosts and agents")
    raw = change(lambda r: r["agents"][0].pop("organization"))
    problem = only(refused(raw))
    assert problem.path == "agents[0].organization"
    assert problem.message == "is required: Organization, used in default names."


# -- checks the resources would make, made first ----------------------------------------------------


@pytest.mark.parametrize(
    ("written", "kept"),
    [("*", "*"), ("10.0.0.5", "10.0.0.5"), ("2001:DB8:0::5", "2001:db8::5"), ("[2001:db8::5]", "2001:db8::5")],
)
def test_binding_addresses_are_kept_in_one_spelling(written: str, kept: str) -> None:
    assert load(change(lambda r: r["agents"][0].update(ipAddress=written))).spec.agents[0].ip_address == kept


def test_a_ca_bundle_is_read_where_the_project_is(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    from tests.providers.test_certificate_engine import make_certificate

    pem = make_certificate(rsa_key()).public_bytes(serialization.Encoding.PEM)
    (tmp_path / "ca.pem").write_bytes(pem)
    raw = change(lambda r: r["hosts"]["main"].update(caBundle="ca.pem"))
    assert load_from(copy.deepcopy(raw), stack_file(raw), STACK, tmp_path).spec.hosts["main"].ca_bundle == "ca.pem"
    (tmp_path / "ca.pem").write_text("not a certificate", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_from(copy.deepcopy(raw), stack_file(raw), STACK, tmp_path)
    (problem,) = caught.value.problems
    assert problem.path == "hosts.main.caBundle"
    assert problem.message.startswith("file 'ca.pem' (relative paths start at the project directory) holds no valid")


@pytest.mark.parametrize(
    ("edit", "path", "fragment"),
    [
        (lambda r: r["agents"][0].update(siteName="Agent/1"), "agents[0].siteName", "in site names: leave them out"),
        (lambda r: r["agents"][0].update(poolName="Agent 1 "), "agents[0].poolName", "without leading or trailing"),
        (
            lambda r: r["agents"][0].update(hosting="service", serviceName="A/B", sslCertificate=None),
            "agents[0].serviceName",
            "not allowed in a service name",
        ),
        (
            lambda r: r["agents"][0].update(identity={"kind": "GroupManagedServiceAccount", "account": "C\\a\\b$"}),
            "agents[0].identity.account",
            "is not an account name",
        ),
        (
            lambda r: r["agents"][0]["settings"]["connections"]["ADExport"].update(password="x"),
            "agents[0].settings.connections.ADExport.password",
            "differs from 'Password' only in case",
        ),
    ],
)
def test_what_a_resource_would_refuse_is_refused_at_its_key(
    edit: Callable[[dict[str, Any]], None], path: str, fragment: str
) -> None:
    raw = change(edit)
    config = stack_file(raw)
    if path.endswith(".password"):  # a managed system's password must be a secret: encrypted in the file
        config["usercube-agents:agents"][0]["settings"]["connections"]["ADExport"]["password"] = {"secure": "v1:x"}
    if "sslCertificate" in raw["agents"][0] and raw["agents"][0]["sslCertificate"] is None:
        del raw["agents"][0]["sslCertificate"]
        del config["usercube-agents:agents"][0]["sslCertificate"]
    problem = only(refused(raw, config))
    assert problem.path == path
    assert fragment in problem.message


def test_an_iis_agent_and_a_service_agent_on_one_host_cannot_share_a_url() -> None:
    def beside(raw: dict[str, Any]) -> None:
        second = copy.deepcopy(raw["agents"][0])
        del second["sslCertificate"]
        second.update(
            name="two",
            workingDirectory="C:\\two",
            hosting="service",
            identity={"kind": "GroupManagedServiceAccount", "account": "CONTOSO\\svc-two$"},
        )
        second["settings"]["agentIdentifier"] = "Contoso-two"
        raw["agents"].append(second)

    problem = only(refused(change(beside)))
    assert problem.path == "agents[1].hostName"
    assert problem.message.startswith(
        "https://agent.contoso.example is also the URL of agents[0] (main) on host 'main'"
    )


# -- the hosting bundle installer, checked locally ---------------------------------------------------


def test_a_hosting_bundle_loads_with_its_file_checked(tmp_path: Path) -> None:
    from devhost.installers import stand_in_installer

    path = stand_in_installer(tmp_path / "dotnet-hosting-8.0.11-win.exe", "8.0.11")
    loaded = load(change(lambda r: r["hosts"]["main"].update(hostingBundle={"path": str(path), "version": "8.0.11"})))
    found = loaded.hosting_bundle("main")
    assert found is not None and found.name == path.name and found.size == path.stat().st_size
    assert "hosting_bundle" not in loaded.spec.hosts["main"].connection("pw"), "not a WinRM setting"


@pytest.mark.parametrize(
    ("file", "version", "path", "says"),
    [
        (None, "8.0.11", "hosts.main.hostingBundle.path", "does not exist"),
        ("plain.txt", "8.0.11", "hosts.main.hostingBundle.path", "is not a Windows executable"),
        ("dotnet-hosting-8.0.10-win.exe", "8.0.11", "hosts.main.hostingBundle.path", "installs 8.0.10, not"),
        ("dotnet-hosting-7.0.20-win.exe", "7.0.20", "hosts.main.hostingBundle.version", "below agents[0]."),
        ("dotnet-hosting-8.0.11-win.exe", "8.0", "hosts.main.hostingBundle.version", "String should match"),
    ],
)
def test_a_bad_hosting_bundle_is_refused_naming_its_key(
    tmp_path: Path, file: str | None, version: str, path: str, says: str
) -> None:
    from devhost.installers import stand_in_installer

    target = tmp_path / (file or "dotnet-hosting-8.0.11-win.exe")
    if file == "plain.txt":
        target.write_text("not an installer")
    elif file is not None:
        stand_in_installer(target, file.split("-")[2])
    bundle = {"path": str(target), "version": version}
    raw = change(lambda r: r["hosts"]["main"].update(hostingBundle=bundle))
    raw["agents"][0]["minimumHostingBundle"] = "8.0"
    problem = only(refused(raw))
    assert problem.path == path and says in problem.message, problem


def test_verification_is_on_unless_an_agent_turns_it_off() -> None:
    assert load(estate()).spec.agents[0].verify is True
    assert load(change(lambda r: r["agents"][0].update(verify=False))).spec.agents[0].verify is False
    problem = only(refused(change(lambda r: r["agents"][0].update(verfy=False))))
    assert problem.path == "agents[0].verfy" and "did you mean 'verify'?" in problem.message
