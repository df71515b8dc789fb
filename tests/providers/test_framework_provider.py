"""The generic provider's view of a connection change (providers/framework/provider.py): a move or only a new
way to reach the same machine. Against SIMULATED hosts (each answers its own MachineGuid, computer name and SMBIOS
UUID, devhost/machine.py).

Issue 11 §1 / audit gap 1: a host's address spelt another way (127.0.0.1 -> localhost, IP -> name, `port` unset ->
its default) was taken for a move, and `up` then deleted what it had just adopted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devhost import auth, iis, machine
from providers.directory.provider import DirectoryProvider
from providers.framework import identity
from providers.framework.identity import HostIdentityUnknown
from providers.framework.provider import connection_change
from providers.transport.errors import HostUnreachable
from tests.support.hosts import Target, start_simulator, stop_simulator


@pytest.fixture(autouse=True)
def _fresh_identities() -> Iterator[None]:
    identity.forget_identities()
    yield
    identity.forget_identities()


def conn(target: Target, **changes: Any) -> dict[str, Any]:
    """The connection as the state records it (every field, defaults applied)."""
    from providers.transport.connection import HostConnection

    return HostConnection.model_validate({**target.connection, **changes}).model_dump(mode="json")


def props(connection: dict[str, Any], path: str = "C:\\respell") -> dict[str, Any]:
    return {"connection": connection, "path": path, "subfolders": ["Work"], "delete_contents": False}


def identity_requests(target: Target, mark: int) -> int:
    return target.operations_since(mark).count("framework/machine_identity")


def commands(target: Target, mark: int) -> int:
    return sum(1 for e in target.journal_since(mark) if e.get("kind") in ("command", "operation"))


@pytest.fixture
def other_machine(tmp_path: Path) -> Iterator[Target]:
    """A second simulated installation (its own MachineGuid), on another loopback address."""
    target = start_simulator(tmp_path / "other", address="127.0.0.45")
    try:
        yield target
    finally:
        stop_simulator(target)


# -- the effective port ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("use_https", "default"), [(False, 5985), (True, 5986)])
def test_port_unset_and_its_default_written_out_are_one_place_without_asking_the_host(
    simulated: Target, use_https: bool, default: int
) -> None:
    old = {**conn(simulated), "host": "agent01.contoso.example", "use_https": use_https, "port": None}
    new = {**old, "port": default}
    mark = simulated.journal_mark()
    assert connection_change({"connection": old}, {"connection": new}) == (False, True)
    assert connection_change({"connection": new}, {"connection": old}) == (False, True)
    # (no host was asked: agent01.contoso.example does not exist, and the simulator saw nothing)
    assert commands(simulated, mark) == 0
    other = {**old, "port": 5985 if use_https else 5986, "read_timeout_s": 3, "operation_timeout_s": 2, "retries": 0}
    old = {**old, "read_timeout_s": 3, "operation_timeout_s": 2, "retries": 0}
    with pytest.raises(HostIdentityUnknown):  # another port: asked, and agent01.contoso.example does not answer
        connection_change({"connection": old}, {"connection": other})


# -- the machine's identity --------------------------------------------------------------------------------------


def test_the_same_machine_by_another_name_is_not_a_move_and_is_asked_once_per_endpoint(simulated: Target) -> None:
    assert simulated.connection["host"] == "127.0.0.1"
    old, new = conn(simulated), conn(simulated, host="localhost")
    mark = simulated.journal_mark()
    for _ in range(5):  # five resources on that host
        assert connection_change({"connection": old}, {"connection": new}) == (False, True)
    assert identity_requests(simulated, mark) == 2, "once per endpoint (127.0.0.1, localhost), not per resource"
    diff = DirectoryProvider().diff("C:\\respell", props(old), props(new))
    assert diff.changes is True and diff.replaces == [], "an update of the recorded connection, no replacement"
    assert identity_requests(simulated, mark) == 2


def test_another_machine_is_a_move(simulated: Target, other_machine: Target) -> None:
    assert machine.machine_guid(other_machine.state_dir) != machine.machine_guid(simulated.state_dir)  # type: ignore[arg-type]
    old, new = conn(simulated), conn(other_machine)
    assert connection_change({"connection": old}, {"connection": new}) == (True, False)
    diff = DirectoryProvider().diff("C:\\respell", props(old), props(new))
    assert diff.replaces == ["connection"] and diff.delete_before_replace is False


def test_a_clone_generalized_with_sysprep_is_another_machine(simulated: Target, other_machine: Target) -> None:
    """The same state folder (a disk) with a new MachineGuid is taken for another machine once asked again."""
    assert other_machine.state_dir is not None
    old, new = conn(simulated), conn(other_machine)
    before = machine.machine_guid(other_machine.state_dir)
    machine.generalize(other_machine.state_dir)
    assert machine.machine_guid(other_machine.state_dir) != before
    assert connection_change({"connection": old}, {"connection": new})[0] is True


# -- clones not generalized with sysprep (review-respell M2): one MachineGuid, two machines ------------------------


def clone(source: Target, copy: Target, *, keep_name: bool = False, keep_uuid: bool = False) -> None:
    assert source.state_dir is not None and copy.state_dir is not None
    machine.clone_without_sysprep(source.state_dir, copy.state_dir, keep_name=keep_name, keep_uuid=keep_uuid)
    assert machine.machine_guid(copy.state_dir) == machine.machine_guid(source.state_dir)


def test_a_clone_without_sysprep_with_another_name_is_a_move_and_says_why(
    simulated: Target, other_machine: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same MachineGuid, the same board UUID (a VM configuration copied with it), another computer name: taken
    for the same machine, nothing would be created on the clone and the state would point at it."""
    clone(simulated, other_machine, keep_uuid=True)
    old, new = conn(simulated), conn(other_machine)
    for _ in range(3):  # three resources on that host
        assert connection_change({"connection": old}, {"connection": new}) == (True, False)
    diff = DirectoryProvider().diff("C:\\respell", props(old), props(new))
    assert diff.replaces == ["connection"] and diff.delete_before_replace is False
    said = capsys.readouterr().err
    assert said.count("warning:") == 1, f"once per pair of addresses, not per resource: {said}"
    assert "share MachineGuid" in said and "sysprep" in said and "computer name" in said, said
    assert "SMBIOS UUID" not in said.split("differ in", 1)[1], "only the field that differed is named"


def test_a_clone_without_sysprep_that_kept_its_name_in_another_vm_is_a_move(
    simulated: Target, other_machine: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same MachineGuid and computer name; the hypervisor gave the clone's VM its own BIOS UUID."""
    clone(simulated, other_machine, keep_name=True)
    old, new = conn(simulated), conn(other_machine)
    assert connection_change({"connection": old}, {"connection": new}) == (True, False)
    said = capsys.readouterr().err
    assert "differ in SMBIOS UUID" in said and "computer name" not in said.split("differ in", 1)[1], said


def test_board_placeholders_are_compared_as_reported(simulated: Target, other_machine: Target) -> None:
    """Both addresses are asked by the same script, so one machine answers the same through both: two all-FF boards
    leave the GUID and the name to decide (a clone that kept the name is taken for the same machine: the limit the
    README states), but a placeholder against any other value is two machines (review-identity2 I2)."""
    assert simulated.state_dir is not None and other_machine.state_dir is not None
    clone(simulated, other_machine, keep_name=True)
    machine.set_smbios_uuid(simulated.state_dir, machine.ALL_FF)
    machine.set_smbios_uuid(other_machine.state_dir, machine.ALL_FF)
    old, new = conn(simulated), conn(other_machine)
    assert connection_change({"connection": old}, {"connection": new}) == (False, True)
    identity.forget_identities()
    machine.set_smbios_uuid(other_machine.state_dir, machine.ALL_ZERO)  # another placeholder: another board
    assert connection_change({"connection": old}, {"connection": new}) == (True, False)
    identity.forget_identities()
    machine.set_smbios_uuid(other_machine.state_dir, "4C4C4544-0042-3510-8052-B4C04F4E3432")  # a real one
    assert connection_change({"connection": old}, {"connection": new}) == (True, False)
    identity.forget_identities()
    machine.set_smbios_uuid(other_machine.state_dir, machine.ALL_FF)
    machine.set_computer_name(other_machine.state_dir, "AGENT-CLONE-02")
    assert connection_change({"connection": old}, {"connection": new}) == (True, False)


def test_the_same_machine_in_every_field_is_an_update_whatever_the_names_case(
    simulated: Target, other_machine: Target
) -> None:
    """Guards the other way: a NetBIOS name is case-insensitive, so a name that differs only in case (and the same
    GUID and board UUID) is not taken for another machine. A clone that kept the name and whose VM configuration
    was copied with its BIOS UUID answers exactly this: the case the README leaves to the operator."""
    assert simulated.state_dir is not None and other_machine.state_dir is not None
    clone(simulated, other_machine, keep_name=True, keep_uuid=True)
    name = machine.computer_name(simulated.state_dir)
    assert name is not None
    # Written as it is, lower case (set_computer_name would upper-case it as Windows does): the comparison itself
    # must ignore case (review-identity2b J3).
    key = iis.registry_key(other_machine.state_dir, machine.COMPUTER_NAME_KEY) or {}
    iis.set_registry_key(other_machine.state_dir, machine.COMPUTER_NAME_KEY, {**key, "ComputerName": name.lower()})
    assert machine.computer_name(other_machine.state_dir) == name.lower()
    old, new = conn(simulated), conn(other_machine)
    assert connection_change({"connection": old}, {"connection": new}) == (False, True)
    diff = DirectoryProvider().diff("C:\\respell", props(old), props(new))
    assert diff.changes is True and diff.replaces == []


def test_a_wmi_that_does_not_answer_is_refused_never_taken_for_a_board_without_uuid(
    simulated: Target, other_machine: Target
) -> None:
    clone(simulated, other_machine, keep_name=True)  # with no UUID compared, this clone would pass for the machine
    other_machine.set_knobs(cim_faults=[{"on": "Win32_ComputerSystemProduct"}])
    with pytest.raises(HostIdentityUnknown, match=r"the new address did not say .*SmbiosUuidUnreadable"):
        connection_change({"connection": conn(simulated)}, {"connection": conn(other_machine)})


def test_an_old_address_that_does_not_answer_is_refused_by_name_never_guessed(simulated: Target) -> None:
    """Taken for a move, a respelt address of the same machine whose old spelling failed once would delete what
    the create through the new one adopted (review-respell M1): the diff refuses, naming both and the fix."""
    gone = conn(simulated, port=1, read_timeout_s=3, operation_timeout_s=2, retries=0)  # nothing listens on port 1
    new = conn(simulated, host="localhost")
    mark = simulated.journal_mark()
    with pytest.raises(HostIdentityUnknown, match=r"from 127\.0\.0\.1:1 to localhost:\d+, but the old address"):
        connection_change({"connection": gone}, {"connection": new})
    with pytest.raises(HostIdentityUnknown, match=r"pulumi state delete"):
        DirectoryProvider().diff("C:\\respell", props(gone), props(new))
    assert identity_requests(simulated, mark) == 0, "the new address is not asked when the old one cannot answer"
    assert commands(simulated, mark) == 0


def test_a_new_address_that_does_not_answer_is_refused_naming_it(simulated: Target) -> None:
    old = conn(simulated)
    new = conn(simulated, host="localhost", port=1, read_timeout_s=3, operation_timeout_s=2, retries=0)
    with pytest.raises(HostIdentityUnknown, match=r"to localhost:1, but the new address .*could not connect"):
        connection_change({"connection": old}, {"connection": new})
    with pytest.raises(HostUnreachable, match=r"host localhost:1: could not connect"):
        DirectoryProvider().create(props(new))


def test_the_identity_is_only_read_and_a_missing_value_is_named(simulated: Target, other_machine: Target) -> None:
    assert other_machine.state_dir is not None
    from devhost import iis

    iis.set_registry_key(other_machine.state_dir, machine.CRYPTOGRAPHY, None)
    answer = identity.machine_identity(conn(other_machine))
    assert answer.guid is None and answer.problem is not None
    assert "MachineGuidMissing" in answer.problem, answer.problem
    assert iis.registry_key(other_machine.state_dir, machine.CRYPTOGRAPHY) is None, "the script never writes"
    # and the diff does not guess: it refuses, naming the value
    with pytest.raises(HostIdentityUnknown, match="MachineGuidMissing"):
        connection_change({"connection": conn(simulated)}, {"connection": conn(other_machine)})


# -- a new way to reach the same host: nothing changes on it, the new settings are used later ---------------------


REACH_CHANGES: list[tuple[str, dict[str, Any]]] = [
    ("user", {"username": "deploy2"}),
    ("transport", {"transport": "basic", "use_https": True}),
    ("useHttps", {"use_https": True}),
    ("caBundle", {"ca_bundle": "CA"}),
]


@pytest.mark.parametrize(("setting", "changes"), REACH_CHANGES, ids=[name for name, _ in REACH_CHANGES])
def test_a_new_way_to_reach_the_host_changes_nothing_on_it_and_is_recorded(
    simulated: Target, setting: str, changes: dict[str, Any]
) -> None:
    """Issue 11 §1: user, transport, HTTPS and CA bundle are how the host is reached, not what is on it. The port
    stays as declared (the simulator's HTTP port), so the place is the same without asking the machine."""
    if changes.get("ca_bundle") == "CA":
        changes = {**changes, "ca_bundle": simulated.ca_cert, "use_https": True}
    provider = DirectoryProvider()
    olds = provider.create(props(conn(simulated))).outs
    news = props(conn(simulated, **changes))
    mark = simulated.journal_mark()
    diff = provider.diff("C:\\respell", olds, news)
    assert diff.changes is True and diff.replaces == [], setting
    result = provider.update("C:\\respell", olds, news)
    assert commands(simulated, mark) == 0, f"a new {setting} sends nothing to the host"
    assert result.outs is not None
    assert result.outs["connection"] == news["connection"], "the new settings are what later operations use"
    provider.delete("C:\\respell", olds)


def test_a_new_user_is_the_one_later_operations_log_on_with(simulated: Target) -> None:
    assert simulated.state_dir is not None
    auth.write_user(simulated.state_dir / "_sim" / "users", "deploy2", "Deploy2-Only-Passw0rd")
    provider = DirectoryProvider()
    olds = provider.create(props(conn(simulated))).outs
    news = props(conn(simulated, username="deploy2", password="Deploy2-Only-Passw0rd"))
    outs = provider.update("C:\\respell", olds, news).outs
    assert outs is not None
    mark = simulated.journal_mark()
    read = provider.read("C:\\respell", outs)
    assert read.outs is not None and read.outs["path"] == "C:\\respell"
    users = {e["user"] for e in simulated.journal_since(mark) if e.get("kind") == "create"}
    assert users == {"deploy2"}, users
    provider.delete("C:\\respell", outs)
