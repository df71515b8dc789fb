"""SIMULATOR: the model of providers/framework/scripts/machine_identity.ps1 (devhost/ops/machine_identity.py) and
the machine it reads (devhost/machine.py), without WinRM or Pulumi: what each simulated machine answers, the
board placeholders answered as reported, no UUID at all refused, a failing WMI query, and that the model's facts
hold the script to it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devhost import machine, ps51
from devhost.fs import WindowsFs
from devhost.hooks import sim_dir
from devhost.ops import SCRIPT_FACTS
from devhost.ops.machine_identity import get
from providers.scripting.runner import ScriptRef, render_script

OP = "framework/machine_identity"


def answer(state: Path) -> dict[str, object]:
    result = get(WindowsFs(state), {})
    assert result.ok, result.error
    return dict(result.state)


def test_each_machine_answers_its_own_guid_name_and_board_uuid(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for state in (one, two):
        machine.install_identity(state)
    first, second = answer(one), answer(two)
    assert set(first) == {"machine_guid", "computer_name", "smbios_uuid"}
    for field in first:
        assert first[field] != second[field], field
    name = machine.computer_name(one)
    assert name is not None and len(name) <= 15 and first["computer_name"] == name  # a NetBIOS name, as set
    reported = machine.smbios_uuid(one)
    assert reported is not None and reported == reported.upper()  # as Win32_ComputerSystemProduct shows it
    assert first["smbios_uuid"] == reported.lower()  # as the script answers it
    machine.install_identity(one)
    assert answer(one) == first, "kept across restarts of the simulator"


def test_a_clone_without_sysprep_shares_only_the_guid_unless_told_to_keep_more(tmp_path: Path) -> None:
    source, renamed, kept = tmp_path / "source", tmp_path / "renamed", tmp_path / "kept"
    for state in (source, renamed, kept):
        machine.install_identity(state)
    machine.clone_without_sysprep(source, renamed)
    machine.clone_without_sysprep(source, kept, keep_name=True, keep_uuid=True)
    original, copy, same = answer(source), answer(renamed), answer(kept)
    assert copy["machine_guid"] == original["machine_guid"]
    assert copy["computer_name"] != original["computer_name"] and copy["smbios_uuid"] != original["smbios_uuid"]
    assert same == original
    machine.generalize(kept)
    assert answer(kept)["machine_guid"] != original["machine_guid"]


@pytest.mark.parametrize(
    ("board", "answered"),
    [
        (machine.ALL_FF, machine.ALL_FF.lower()),
        (machine.ALL_ZERO, machine.ALL_ZERO),
    ],
    ids=["all-FF", "all-zero"],
)
def test_a_board_placeholder_is_answered_as_reported(tmp_path: Path, board: str, answered: str) -> None:
    # Compared as reported: one machine answers the same value through both addresses (review-identity2 I2).
    machine.install_identity(tmp_path)
    machine.set_smbios_uuid(tmp_path, board)
    assert answer(tmp_path)["smbios_uuid"] == answered


@pytest.mark.parametrize("board", [None, "", " \t"], ids=["null", "empty", "blank"])
def test_no_uuid_at_all_is_unreadable_never_unknown(tmp_path: Path, board: str | None) -> None:
    # No instance, or one without a UUID string: the identity would be weaker without anyone knowing (I3). An empty
    # or blank string is no UUID either: answered as '', the provider refused it with unfitting advice (J2).
    machine.install_identity(tmp_path)
    machine.set_smbios_uuid(tmp_path, board)
    refused = get(WindowsFs(tmp_path), {})
    assert not refused.ok and refused.error is not None and refused.error["id"] == "SmbiosUuidUnreadable"
    assert "one instance whose UUID was missing or empty" in refused.error["message"]  # what was wrong (J5)


def test_a_uuid_that_only_starts_like_a_placeholder_is_a_uuid(tmp_path: Path) -> None:
    machine.install_identity(tmp_path)
    machine.set_smbios_uuid(tmp_path, "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFE")
    assert answer(tmp_path)["smbios_uuid"] == "ffffffff-ffff-ffff-ffff-fffffffffffe"


def test_a_failing_wmi_query_is_named_not_taken_for_a_board_without_uuid(tmp_path: Path) -> None:
    machine.install_identity(tmp_path)
    (sim_dir(tmp_path) / "knobs.json").write_text(
        json.dumps({"cim_faults": [{"on": "Win32_ComputerSystemProduct"}]}), encoding="utf-8"
    )
    result = get(WindowsFs(tmp_path), {})
    assert not result.ok and result.error is not None
    assert result.error["id"] == "SmbiosUuidUnreadable"
    assert "winmgmt" in result.error["message"]
    assert answer(tmp_path)["smbios_uuid"] is not None, "one-shot: the next query answers"


def test_the_facts_hold_the_script_to_what_the_model_does() -> None:
    text = render_script(ScriptRef("providers.framework", "machine_identity"))
    assert ps51.check_script(SCRIPT_FACTS, OP, text) == []
    mutations = {
        # no instance or no UUID string taken for a UUID not known
        "no UUID is fine": text.replace("$products.Count -ne 1 -or $products[0].UUID -isnot [string]", "$false"),
        # an empty or blank UUID answered as '' (J2)
        "blank UUID is fine": text.replace(" -or [string]::IsNullOrWhiteSpace($products[0].UUID)", ""),
        # a failing WMI query taken for a board without UUID
        "swallows WMI": text.replace("Stop-Operation -Id 'SmbiosUuidUnreadable'", "Write-Verbose 'no UUID'"),
        # the name dropped from the answer
        "no name": text.replace("    computer_name = $computerName\n", ""),
        # the name read from the environment (COMPUTERNAME can be set by anyone), not GetComputerName
        "env name": text.replace("[Environment]::MachineName", "$env:COMPUTERNAME"),
    }
    for why, mutated in mutations.items():
        assert mutated != text, why
        assert ps51.check_script(SCRIPT_FACTS, OP, mutated), why
