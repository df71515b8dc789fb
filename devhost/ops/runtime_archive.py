"""SIMULATOR: model of providers/runtime_archive/scripts/{get,chunk,set,remove}.ps1.

File operations go through devhost.fileops (a running agent's images cannot be deleted or overwritten, only
renamed; files other programs hold open), the archive through devhost.ziparchive (.NET Framework's ZipFile),
pools through devhost.iis and services through devhost.scm. Every stop and start of an agent is recorded in
the journal as ``{"kind": "agent", "action": "stop" | "start", "what": "pool" | "service", "name"}``.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import math
import os
import re
import time
from collections.abc import Iterator
from typing import Any

from devhost import iis, ntfs, scm, service_controller
from devhost.fileops import (
    DotNetError,
    delete_empty_folder,
    delete_file,
    move_file,
    remove_tree,
    timespan_s,
    worker_exit_at,
)
from devhost.fs import WindowsFs
from devhost.hooks import Journal, read_knobs, sim_dir
from devhost.ops import staging
from devhost.ops.envelope import Envelope, OperationStopped, change, fail, operation, require_keys, succeed
from devhost.ops.iis_common import not_installed, object_state
from devhost.ps51 import ScriptFact
from devhost.ziparchive import Entry, extract_entry, open_stream

_KEYS = {
    "runtime_path",
    "archive_name",
    "sha256",
    "size",
    "keep_files",
    "app_pool",
    "service_name",
    "wait_budget_s",
    "command_timeout_s",
}
_CHUNK_KEYS = {"runtime_path", "sha256", "size", "offset", "data"}
PROGRAM_DATA = staging.PROGRAM_DATA
partial_path = staging.partial_path
NEW_FOLDER, OLD_FOLDER = ".iac-new", ".iac-old"
MAX_PATH = 259
MAX_FOLDER = 247
# Path.GetInvalidFileNameChars() on Windows.
_INVALID_NAME = re.compile(r'["<>|:*?\\/\x00-\x1f]')
# Reserved device names, also with an extension (learn.microsoft.com "Naming Files, Paths, and Namespaces";
# 'nul.txt' is still NUL on Windows Server 2019/2022; COM and LPT take the superscript digits too, and spaces before
# the extension are dropped); PowerShell's -match ignores case.
_DEVICE_NAME = re.compile(
    r"^(CON|PRN|AUX|NUL|COM[0-9\u00B9\u00B2\u00B3]|LPT[0-9\u00B9\u00B2\u00B3]) *(\.|$)", re.IGNORECASE
)
SHUTDOWN_WAIT_MARGIN_S, SHUTDOWN_WAIT_MAX_S = 30, 150  # Get-PoolShutdownWait
STATE_READ_S = 20 * 0.25  # Get-IisObjectState: a State that throws is read 20 times 250 ms apart, then Unknown
_PASSING = ("Starting", "Stopping", "Unknown")  # the pool states Stop-Agent waits out (review-archive4 R2)

_SET = ("runtime_archive/set",)
# $FormerDefaultKeptFiles: what a manifest written before it recorded keep_files kept (the resource's default then).
FORMER_DEFAULT_KEPT_FILES = ("web.config", "appsettings.json", "appsettings.agent.json")
MINIMUM_STOP_WAIT_S = 30  # $MinimumStopWaitSeconds: the shortest wait a service's own stop gets (review-archive7 Z2)
_ALL = ("runtime_archive/get", "runtime_archive/chunk", "runtime_archive/set", "runtime_archive/remove")
# The constructs of the reviewed scripts that the model below relies on (checked by bless_scripts).
SCRIPT_FACTS = (
    *staging.script_facts("runtime_archive/chunk", ("runtime_archive/chunk", "runtime_archive/set"), _ALL),
    ScriptFact(
        _ALL,
        r"\.Substring\(0, 16\)\s+return \[System\.IO\.Path\]::Combine\(\[Environment\]::GetFolderPath\("
        r"'CommonApplicationData'\), 'UsercubeIac', 'RuntimeArchive', \$key\)",
        "the staging folder is %ProgramData%\\UsercubeIac\\RuntimeArchive\\<16 hex digits of the Runtime path's "
        "SHA-256>",
    ),
    ScriptFact(
        _ALL,
        r"\$FormerDefaultKeptFiles = @\('web\.config', 'appsettings\.json', 'appsettings\.agent\.json'\)\s+"
        r"function Get-KeptFiles\(\$Manifest\) \{[^}]*?"
        r"if \(\$null -eq \$Manifest\.PSObject\.Properties\['keep_files'\]\) \{ "
        r"return ,@\(\$FormerDefaultKeptFiles\) \}",
        "a manifest without keep_files (written before they were recorded) kept the former default list",
    ),
    ScriptFact(
        _SET,
        r"\$keptAsBefore = \$keep\.SetEquals\(\[string\[\]\]@\(\$before\.kept_files\)\)\s+"
        r"if \(\$before\.sha256 -eq \$sha -and @\(\$before\.missing_files\)\.Count -eq 0 -and \$keptAsBefore\) \{",
        "set installs the same archive again when the kept files differ from the manifest's (HashSet.SetEquals with "
        "OrdinalIgnoreCase: any order, case aside)",
    ),
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"\$committed = \(\$null -ne \$manifest -and \[string\]\$manifest\.sha256 -eq \[string\]\$journal\.sha256\)\s+"
        r"if \(\$committed -and \$null -ne \$journal\.PSObject\.Properties\['keep_files'\]\) \{\s+"
        r"\$kept = New-PathSet\s+(#[^\n]*\s+)*"
        r"foreach \(\$file in \(Get-KeptFiles \$manifest\)\) \{ \[void\]\$kept\.Add\(\[string\]\$file\) \}\s+"
        r"\$committed = \$kept\.SetEquals\(\[string\[\]\]@\(\$journal\.keep_files\)\)",
        "an interrupted swap counts as committed only when the manifest has its sha256 and its keep_files (a journal "
        "without keep_files: its sha256 alone), each of the manifest's files one name (Get-KeptFiles writes its list "
        "as one object: no @() around the call)",
    ),
    ScriptFact(
        ("runtime_archive/remove",),
        r"Assert-StagingFolder",
        "remove refuses a staging folder someone else owns or can write, changing nothing",
    ),
    ScriptFact(
        _ALL,
        r"\$repair = Get-StagingRepair \$folder 'runtime_path'\s+"
        r"if \(\$null -ne \$repair\) \{ \$state\.interrupted \+= \"staging folder to repair: \$repair\" \}",
        "get reports a staging level set would repair as drift (interrupted), refusing only what set refuses",
    ),
    ScriptFact(
        _ALL,
        r"if \(\$null -eq \$repair -and \[System\.IO\.File\]::Exists\(\$partial\)\) \{",
        "what a staging folder to repair holds is not counted as uploaded",
    ),
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"Add-Type -AssemblyName System\.ServiceProcess",
        "ServiceController's assembly is loaded: a CreateDefault2 runspace (the bootstrap's pool) does not load it",
    ),
    ScriptFact(
        _SET,
        r"\$stream = \[System\.IO\.FileStream\]::new\(\$partial, \[System\.IO\.FileMode\]::Open, "
        r"\[System\.IO\.FileAccess\]::Read, \[System\.IO\.FileShare\]::Read\)\s+try \{\s+"
        r"\$heldSha = Get-StreamSha256 \$stream[\s\S]*?\$stream\.Position = 0\s+\$archive = \$null\s+try \{\s+"
        r"\$archive = \[System\.IO\.Compression\.ZipArchive\]::new\(\$stream, "
        r"\[System\.IO\.Compression\.ZipArchiveMode\]::Read, \$true\)",
        "the staging file is hashed and read as a zip through one handle that shares only reading (FileShare.Read: "
        "no one may write, rename or delete it meanwhile, learn.microsoft.com CreateFile dwShareMode)",
    ),
    ScriptFact(
        _SET,
        r"\[System\.IO\.Compression\.ZipFile\]::(OpenRead|ExtractToDirectory)\(",
        "the staging file is never opened again by its path for the entries or the extraction",
        present=False,
    ),
    ScriptFact(
        _SET,
        r"foreach \(\$entry in \$archive\.Entries\) \{[\s\S]*?if \(\$keep\.Contains\(\$name\)\) \{ continue \}\s+"
        r"New-ParentFolder \$target\s+"
        r"\[System\.IO\.Compression\.ZipFileExtensions\]::ExtractToFile\(\$entry, \$target, \$false\)",
        "the archive is extracted entry by entry into Runtime\\.iac-new, which the script has just removed, never a "
        "kept file: ExtractToFile(overwrite false) never overwrites (IOException for a file that exists; "
        "learn.microsoft.com ZipFileExtensions.ExtractToFile)",
    ),
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"try \{ (\[void\]\(Restore-InterruptedSwap \$Spec \$runtime \$folder \$true\)|"
        r"\$restoreStopped = Restore-InterruptedSwap \$Spec \$runtime \$folder \$false) \} catch \{ "
        r"if \(Test-OperationEnd \$_\.Exception\) \{ throw \}; Stop-Reported \$_\.Exception \}",
        "an interrupted swap (swap.json) is undone from .iac-old, or finished when the manifest committed it, "
        "before any work folder is removed, by set and by remove (before it reads the manifest)",
    ),
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"\$stopped = Stop-Agent \$Spec \$Folder \$StartsAgain\s+\$errors = Undo-Swap @\(\$journal\.moves\)",
        "an interrupted swap is undone with the agent stopped (a reboot or iisreset may have started it on the mix)",
    ),
    ScriptFact(
        _SET,
        r"foreach \(\$start in \(Start-Agent \$folder\)\) \{ \$recovered \+= New-Change",
        "what agent-stopped.json lists is started before anything else, also when nothing else is to do; a start that "
        "fails is a change, and the run goes on",
    ),
    ScriptFact(
        _SET,
        r"Stop-Operation -Id 'AgentStartFailed'",
        "a failed start never fails the set (neither before the install nor after the commit)",
        present=False,
    ),
    ScriptFact(
        _SET,
        r"if \(@\(\$outcomes \| Where-Object \{ \$_\.failed \}\)\.Count -eq 0\) \{ "
        r"\[System\.IO\.File\]::Delete\(\(Get-AgentStoppedPath \$Folder\)\) \}",
        "Start-Agent deletes the record only when nothing failed to start",
    ),
    ScriptFact(
        _SET,
        r"\$runs = @\('Started', 'running \(started since\)'\) -contains \$main\.outcome\s+"
        r"foreach \(\$name in @\(\$record\.dependents\)\) \{\s+\$dependentsLeft--\s+if \(\$runs\) \{",
        "the dependent services are started only when the agent's service runs; otherwise they get its outcome",
    ),
    ScriptFact(
        _SET,
        r"\$disabledThen = \$null -ne \$startTypeThen -and \[string\]\$startTypeThen\.Value -eq 'Disabled'[\s\S]*?"
        r"StartType -eq \[System\.ServiceProcess\.ServiceStartMode\]::Disabled -and -not \$DisabledThen\)",
        "a Disabled service is left stopped only when it was not Disabled already when it was stopped",
    ),
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"\$record\.start_type = \[string\]\$service\[0\]\.StartType[\s\S]*?"
        r"Write-AgentStopped \$Folder \$record\s+\$stopped \+= 'service'\s+(?:#[^\n]*\s+)*\$wait = [^\n]*\s+"
        r"\$stopReturned = \$false\s+try \{\s+"
        r"\$service\[0\]\.Stop\(\)\s+\$stopReturned = \$true\s+"
        r"\$service\[0\]\.WaitForStatus\([^\n]*\)\s+\} catch \{[\s\S]*?"
        r"throw \(New-AgentStopError 'service_name'",
        "Stop-Agent records the service's start type, then a Stop or WaitForStatus that throws is AgentStopFailed",
    ),
    ScriptFact(
        _SET,
        r"if \(\$null -eq \$pool\) \{\s+\$outcome = 'gone \(nothing to start\)'[\s\S]*?"
        r"elseif \(\$null -ne \$autoStartThen -and \$autoStartThen\.Value -eq \$true -and -not \$pool\.AutoStart\)",
        "Start-Agent leaves alone a pool that is gone, runs, or whose AutoStart was true when it was stopped and is "
        "false now (stopped on purpose since); it starts it otherwise",
    ),
    ScriptFact(
        _SET,
        r"if \(\$found\.Count -eq 0\) \{\s+\$outcome = 'gone \(nothing to start\)'[\s\S]*?"
        r"elseif \(\$found\[0\]\.StartType -eq \[System\.ServiceProcess\.ServiceStartMode\]::Disabled -and "
        r"-not \$DisabledThen\)",
        "Start-Agent leaves alone a service that is gone, runs, or became Disabled (StartService: "
        "ERROR_SERVICE_DISABLED); it starts it otherwise",
    ),
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"\$record\.auto_start = \[bool\]\$pool\.AutoStart\s+Write-AgentStopped \$Folder \$record",
        "Stop-Agent records the pool's AutoStart before it stops it",
    ),
    ScriptFact(
        _SET,
        r"if \(\$replaced\.Count \+ \$obsolete\.Count -gt 0\) \{ \$stopped = Stop-Agent \$Spec \$folder \$true \}",
        "the agent is stopped only when a file it runs from is to be replaced or removed",
    ),
    ScriptFact(
        _SET,
        r"\} finally \{\s+# Whatever happened above",
        "no finally around the swap: an error thrown there would replace the swap's own (the first error is kept)",
        present=False,
    ),
    ScriptFact(
        _SET,
        r"\} catch \{\s+# [^\n]*\s+if \(Test-OperationEnd \$_\.Exception\) \{ throw \}\s+"
        r"\$failure = \$_\.Exception  # also Stop-Agent's AgentStopFailed[^\n]*\s+\}\s+"
        r"\$undoErrors = @\(\)\s+if \(\$null -ne \$failure\) \{ \$undoErrors = Undo-Swap @\(\$plan\) \}[\s\S]*?"
        r"if \(\$undoErrors\.Count -eq 0\) \{ \$started = Start-Agent \$folder \}",
        "every error of the swap but an operation's end (IIS missing, before any stop) is caught (Stop-Agent's "
        "AgentStopFailed too), undone, then the agent started again only when the undo was complete",
    ),
    ScriptFact(
        _SET,
        r"if \(\$first\.id\) \{ \$id = \$first\.id; \$property = \$first\.property \}",
        "a failed swap reports the first error's own id when it has one (AgentStopFailed), else SwapFailed",
    ),
    ScriptFact(
        ("runtime_archive/remove",),
        r"try \{ \$stopped = Stop-Agent \$Spec \$folder \$false \} catch \{ "
        r"if \(Test-OperationEnd \$_\.Exception\) \{ throw \}; \$stopError = \$_\.Exception \}[\s\S]*?"
        r"\$record = Read-AgentStopped \$folder[\s\S]*?# [^\n]*\s+"
        r"\[System\.IO\.File\]::Delete\(\(Get-AgentStoppedPath \$folder\)\)\s+"
        r"if \(\$null -ne \$stopError\) \{ Stop-Reported \$stopError \}\s+(# [^\n]*\s+)+"
        r"if \(\$stopped -contains 'pool'\)",
        "remove stops the agent, drops its record (it is not started again), then deletes the files, keeping the "
        "manifest when a program still holds some (RuntimeFilesInUse)",
    ),
    ScriptFact(
        ("runtime_archive/remove",),
        r"if \(\$stopped -contains 'pool'\) \{ \[void\]\(Wait-PoolWorkerExit \(\[string\]\$Spec\.app_pool\)\) \}"
        r"\s+\}\s+"
        r"\$held = Remove-Files ",
        "remove waits for the stopped pool's worker to exit (no worker process listed), within its shutdownTimeLimit "
        "and 5 s, before it deletes the files",
    ),
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"\$clock = \[System\.Diagnostics\.Stopwatch\]::StartNew\(\)\s+"
        r"\$state = Get-IisObjectState \{ \$Pool\.State \}\s+"
        r"while \(\$state -ne \$Final -and \$clock\.Elapsed\.TotalSeconds -lt \$Seconds\)",
        "Wait-PoolState waits within one deadline, however long each State read takes",
    ),
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"\$wait = Get-WaitBudget \(Get-PoolShutdownWait \$pool\)\s+"
        r"\$state = Wait-PoolState \$pool 'Stopped' \$wait[\s\S]*?"
        r"\$state = Wait-PoolState \$pool 'Started' \(Get-WaitBudgetBefore 10 \(30 \* \$servicesLeft\)\)",
        "the pool's stop is waited for within Get-PoolShutdownWait, its start within 10 s (both within the budget)",
    ),
    # -- review-owed A1-A7 (the RuntimeArchive 'archive2' round) --
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"\$service\[0\]\.DependentServices[\s\S]*?\.Dispose\(\)[\s\S]*?\$service\[0\]\.Stop\(\)",
        "A1: no dependent's controller is disposed before Stop(): DependentServices is the cached array Stop() walks "
        "again, and a disposed controller throws ObjectDisposedException there (microsoft/referencesource "
        "ServiceController.cs: DependentServices, Stop, Dispose, GetDataBaseHandleWithConnectAccess)",
        present=False,
    ),
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"\$service\[0\]\.Stop\(\)[\s\S]*?\} finally \{\s+"
        r"foreach \(\$entry in @\(\$all\) \+ @\(\$dependents\)\) \{ \$entry\.Dispose\(\) \}",
        "A1: the dependents' controllers are disposed after Stop(), with the others",
    ),
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"Write-JsonFile \(Get-AgentStoppedPath \$Folder\) \$record",
        "A2: Stop-Agent writes agent-stopped.json only through Write-AgentStopped, which merges with the record there",
        present=False,
    ),
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"\$earlier = Read-AgentStopped \$Folder[\s\S]*?"
        r"if \(\$earlier\.pool -and -not \$merged\.pool\) \{[\s\S]*?"
        r"if \(\$earlier\.service -and -not \$merged\.service\) \{[\s\S]*?"
        r"foreach \(\$dependent in @\(\$earlier\.dependents\) \+ @\(\$merged\.dependents\)\)[\s\S]*?"
        r"return \$merged\s+\}\s+function Write-AgentStopped\(\[string\] \$Folder, \$Record\) \{\s+"
        r"Write-JsonFile \(Get-AgentStoppedPath \$Folder\) \(Get-MergedAgentRecord \$Folder \$Record\)",
        "A2, N1: a record already there keeps its entries, with their AutoStart and start type only when this run "
        "records none (a pool or service this run stops itself gets this run's); the dependents are united",
    ),
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"\$passing = @\('Starting', 'Stopping', 'Unknown'\)\s+if \(\$passing -contains \$state\) \{[\s\S]*?"
        r"\$state = Wait-PoolStateLeft \$pool \$passing \$wait[\s\S]*?if \(\$state -eq 'Started'\) \{",
        "A3: a Starting pool is waited for, then stopped and recorded",
    ),
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"\$pendingStart -contains \$service\[0\]\.Status\) \{[\s\S]*?"
        r"\$wait = Get-WaitBudget 60\s+"
        r"if \(-not \(Wait-ServiceStateLeft \$service\[0\] \$pendingStart \$wait\)\) \{[\s\S]*?"
        r"elseif \(\$service\.Count -eq 1 -and \$service\[0\]\.Status -ne "
        r"\[System\.ServiceProcess\.ServiceControllerStatus\]::Stopped\)[\s\S]*?"
        r"Where-Object \{ \$_\.Status -ne \[System\.ServiceProcess\.ServiceControllerStatus\]::Stopped \}",
        "A3, N3: a service in StartPending/ContinuePending is waited for until it is neither (ControlService refuses a "
        "stop in StartPending: 1061; WaitForStatus(Running) would wait out a failed start), then any state but "
        "Stopped is stopped and recorded, with every dependent not Stopped (what ServiceController.Stop stops)",
    ),
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"try \{ \$limit = \$Pool\.ProcessModel\.ShutdownTimeLimit\.TotalSeconds \} catch \{ \$limit = 90 \}\s+"
        r"return \[int\]\[Math\]::Min\(\$limit \+ 30, 150\)[\s\S]*?"
        r"if \(\$null -eq \$limit\) \{ \$limit = Get-WaitBudget \(Get-PoolShutdownWait \$pool\) \}",
        "A4: the pool's stop and its worker's exit are waited for within shutdownTimeLimit + 30 s, at most 150 s",
    ),
    ScriptFact(
        _SET,
        r"\{ \$stopped = Stop-Agent \$Spec \$folder \$true \}\s+(# [^\n]*\s+)+"
        r"if \(\$stopped -contains 'pool'\) \{ Assert-PoolWorkerExited \(\[string\]\$Spec\.app_pool\) \$true \}",
        "A4, N4: set waits for the stopped pool's worker to exit before the swap, as remove does, and fails with "
        "AgentStopFailed when one still runs after the wait (never a swap beside a live worker)",
    ),
    ScriptFact(
        _SET,
        r"\$pendingStart -contains \$found\[0\]\.Status\) \{[\s\S]*?"
        r"\$wait = Get-WaitBudgetBefore 60 \$reserve\s+[^\n]*\s+"
        r"if \(-not \(Wait-ServiceStateLeft \$found\[0\] \$pendingStart \$wait\)\) \{[\s\S]*?"
        r"if \(\$found\.Count -eq 0\) \{",
        "A5, N3: Start-Agent waits for a service being started until it is neither StartPending nor ContinuePending "
        "instead of calling Start (StartService: 1056), then takes it as it is (a failed start is started again)",
    ),
    ScriptFact(
        _SET,
        r"\$_ -match '\^\(CON\|PRN\|AUX\|NUL\|COM\[0-9\\u00B9\\u00B2\\u00B3\]\|LPT\[0-9\\u00B9\\u00B2\\u00B3\]\) "
        r"\*\(\\\.\|\$\)'",
        "A6, N5: an entry segment that is a reserved device name (also with an extension, spaces before it, and "
        "COM/LPT with a superscript digit: learn.microsoft.com Naming Files) is ArchiveEntryRefused",
    ),
    ScriptFact(
        _SET,
        r"try \{\s+\$archive = \[System\.IO\.Compression\.ZipArchive\]::new\([^\n]*\)\s+(# [^\n]*\s+)*"
        r"\[void\]\$archive\.Entries\.Count\s+\} catch \{[\s\S]*?"
        r"Stop-Operation -Id 'ArchiveInvalid' -Property 'source_path'",
        "A7: a staging file that is no zip is ArchiveInvalid (source_path), not UnexpectedError",
    ),
    # -- review-archive3 N1-N8 (the RuntimeArchive 'archive3' round) --
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"if \(\$passing -contains \$state\) \{[\s\S]*?"
        r"\$state = Wait-PoolStateLeft \$pool \$passing \$wait\s+if \(\$passing -contains \$state\) \{\s+"
        r"throw \(New-AgentStopError 'app_pool'[^\n]*\s+\}\s+"
        r"if \(\$state -eq 'Stopped'\) \{ Assert-PoolWorkerExited \(\[string\]\$Spec\.app_pool\) \$false \}\s+\}\s+"
        r"if \(\$state -eq 'Started'\) \{",
        "N2, R2: a pool Starting, Stopping (its worker drains, learn.microsoft.com ObjectState, shutdownTimeLimit) or "
        "Unknown is waited for in one loop until it is none of them, without a record; Stopped, its worker's exit is "
        "waited for; Started, it is stopped and recorded",
    ),
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"\$left = Wait-PoolWorkerExit \$PoolName\s+if \(\$left -gt 0\) \{[\s\S]*?"
        r"throw \(New-AgentStopError 'app_pool'[\s\S]*?"
        r"if \(\$count -eq 0 -or \$clock\.Elapsed\.TotalSeconds -ge \$limit\) \{ return \[int\]\$count \}",
        "N4: Wait-PoolWorkerExit returns the workers still listed after its capped wait, and Assert-PoolWorkerExited "
        "makes that AgentStopFailed",
    ),
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"\$Service\.Refresh\(\)\s+while \(\$Passing -contains \$Service\.Status\) \{",
        "N3: Wait-ServiceStateLeft polls with Refresh() until the status is none of the pending ones, whatever it "
        "becomes (WaitForStatus waits for exactly one status: referencesource ServiceController.WaitForStatus)",
    ),
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"WaitForStatus\(\[System\.ServiceProcess\.ServiceControllerStatus\]::Running, "
        r"\[TimeSpan\]::FromSeconds\([^\n]*\)\s+\} catch \{\s+"
        r"throw \(New-(AgentStopError|OperationError 'AgentStopFailed')",
        "N3: no WaitForStatus(Running) for a start under way in Stop-Agent (a failed start would be a false "
        "AgentStopFailed)",
        present=False,
    ),
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"\$dependents = @\(\$service\[0\]\.DependentServices\)\s+(# [^\n]*\s+)+"
        r"\$pendingControl = @\(\[System\.ServiceProcess\.ServiceControllerStatus\]::StartPending, "
        r"\[System\.ServiceProcess\.ServiceControllerStatus\]::StopPending\)[\s\S]*?"
        r"foreach \(\$dependent in \$dependents\) \{\s+"
        r"if \(-not \(Wait-ServiceStateLeft \$dependent \$pendingControl [^\n]*\s+"
        r"throw \(New-AgentStopError 'service_name'[\s\S]*?"
        r"\$record\.dependents = [\s\S]*?\$service\[0\]\.Stop\(\)",
        "N7: the dependents in StartPending or StopPending are waited for before anything is recorded or Stop() "
        "sends them a stop they refuse (1061, learn.microsoft.com ControlService)",
    ),
    ScriptFact(
        _SET,
        r"\$archive = \[System\.IO\.Compression\.ZipArchive\]::new\([^\n]*\)\s+(# [^\n]*\s+)*"
        r"\[void\]\$archive\.Entries\.Count\s+\} catch \{[\s\S]*?Stop-Operation -Id 'ArchiveInvalid'",
        "N6: the central directory (read on the first Entries, referencesource ZipArchive.cs) is read inside the "
        "ArchiveInvalid catch: a damaged one is ArchiveInvalid, not UnexpectedError",
    ),
    ScriptFact(
        _SET,
        r"\$_\.TrimEnd\('\. '\) -ne \$_",
        "an entry name segment ending in a dot or a space is refused (Windows drops them when it creates the file)",
    ),
    ScriptFact(
        _SET,
        r"if \(-not \$isFolder -and \$parent\.Length -gt 247\)[\s\S]*?if \(\$isFolder -and \$longest\.Length -gt 247\)",
        "an entry whose folder would be longer than 247 characters is ArchivePathTooLong (.NET Framework's limit)",
    ),
    ScriptFact(
        _SET,
        r"foreach \(\$work in @\(\$new, \$old\)\) \{\s+if \(-not \(Remove-TreeBestEffort \$work\)\) \{\s+"
        r"Stop-Operation -Id 'WorkFolderBusy'",
        "leftover work folders are deleted best effort before the extraction; one still held is WorkFolderBusy",
    ),
    ScriptFact(
        _ALL,
        r"if \(\[System\.IO\.Directory\]::Exists\(\$path\)\) \{ "
        r"\$state\.interrupted \+= \"work folder left: \$path\" \}",
        "a work folder left in Runtime (.iac-new, .iac-old) is reported as interrupted (drift)",
    ),
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"Status -eq \[System\.ServiceProcess\.ServiceControllerStatus\]::StopPending\) \{[\s\S]*?"
        r"throw \(New-AgentStopError 'service_name' \"service '\$name' is still stopping",
        "Stop-Agent waits for a service still stopping (StopPending) without recording it; AgentStopFailed if it "
        "does not finish",
    ),
    ScriptFact(
        _SET,
        r"\$oldGone = Remove-TreeBestEffort \$old",
        ".iac-old is deleted best effort after the commit (an exiting worker may still map its images)",
    ),
    ScriptFact(
        _SET,
        r"for \(\$index = \$Moves\.Count - 1; \$index -ge 0; \$index--\) \{",
        "a failed swap is undone newest move first, with the retrying move, past errors",
    ),
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"if \(\(\$folder\.Attributes -band \[System\.IO\.FileAttributes\]::ReparsePoint\) -ne 0\) \{\s+"
        r"\[System\.IO\.Directory\]::Delete\(\$Path, \$false\)",
        "Remove-Tree removes a junction as a link, never entering it (Directory.Delete remarks; "
        "PowerShell/PowerShell#621 for Remove-Item -Recurse)",
    ),
    # -- review-archive4 R1-R4 (the RuntimeArchive 'archive4' round) --
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"function Get-AgentPoolState\(\$Pool\) \{\s+(# [^\n]*\s+)+"
        r"\$state = Get-IisObjectState \{ \$Pool\.State \}\s+"
        r"if \(\$state -eq 'Unknown' -and \(Test-WasStopped\)\) \{ return 'Stopped' \}[\s\S]*?"
        r"function Test-WasStopped \{[\s\S]*?\[System\.ServiceProcess\.ServiceController\]::GetServices\(\)[\s\S]*?"
        r"\$_\.ServiceName -eq 'WAS'[\s\S]*?"
        r"\$was\[0\]\.Status -eq \[System\.ServiceProcess\.ServiceControllerStatus\]::Stopped\)",
        "R1: a pool whose State cannot be read (Unknown) while WAS's service is Stopped (ServiceController status, "
        "never text) is taken as Stopped: no worker runs without WAS (devhost.iis.WasNotRunning)",
    ),
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"if \(\$null -ne \$pool\) \{ \$state = Get-AgentPoolState \$pool \}[\s\S]*?"
        r"function Wait-PoolStateLeft\([^\n]*\s+(# [^\n]*\s+)+[^\n]*\s+\$state = Get-AgentPoolState \$Pool\s+"
        r"while \(\$Passing -contains \$state[^\n]*\s+Start-Sleep -Milliseconds 250\s+"
        r"\$state = Get-AgentPoolState \$Pool",
        "R1: Stop-Agent's first read of the pool and every read of its wait go through Get-AgentPoolState",
    ),
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"if \(\$state -eq 'Starting'\) \{",
        "R2: no separate Starting branch before the wait: a state left for Starting is waited for in the same loop",
        present=False,
    ),
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"function Get-WaitBudget\(\[int\] \$Seconds\) \{\s+(# [^\n]*\s+)+"
        r"\$left = \[Math\]::Floor\(\$RunBudgetSeconds - \$RunClock\.Elapsed\.TotalSeconds\)\s+"
        r"return \[int\]\[Math\]::Max\(0, \[Math\]::Min\(\$Seconds, \$left\)\)",
        "R3: Get-WaitBudget caps a wait to what is left of the run's budget (whole seconds, never below 0)",
    ),
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"\$RunClock = \[System\.Diagnostics\.Stopwatch\]::StartNew\(\)\s+"
        r"\$RunBudgetSeconds = \[int\]\$Spec\.wait_budget_s\s+\$runtime = \[string\]\$Spec\.runtime_path",
        "R3: set and remove start the run's clock at their top, with the budget of the input's wait_budget_s",
    ),
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"(Wait-ServiceStateLeft [^\n]* (60|120)\)|FromSeconds\((60|120)\)|Wait-PoolState \$pool '\w+' (10|30)\b|"
        r"New-OperationError 'AgentStopFailed' ')",
        "R3: no wait of Stop-Agent or Start-Agent with a fixed time of its own (each takes Get-WaitBudget), and every "
        "AgentStopFailed goes through New-AgentStopError (the budget's note)",
        present=False,
    ),
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"and this run then tries to start the pool again \(the outcome follows; once it runs, the next run would "
        r"wait for the same drain\)' \}\s+"
        r"throw \(New-AgentStopError 'app_pool' [^\n]*Lower the pool's shutdownTimeLimit to 120 s or less, or end the "
        r"draining w3wp\.exe before the run, then run again\"\)",
        "R4: a worker still draining after the wait says how to end the drain, and (W5) that the pool's start is "
        "tried after it, never that it was started",
    ),
    # -- review-archive5 (the RuntimeArchive 'archive5' round) --
    ScriptFact(
        _SET,
        r"try \{\s+\$pool = \$manager\.ApplicationPools\[\$name\][\s\S]*?\[void\]\$pool\.Start\(\)[\s\S]*?"
        r"\} catch \{\s+\$reason = \$_\.Exception\s+while [^\n]*\s+\$problem = \$reason\.Message",
        "W2: Start-Agent takes any error of the pool's Start() (WAS not running: devhost.iis.WasNotRunning) as a "
        "failed start, reported with its message, and set goes on",
    ),
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"\$runningDependents = @\(\$record\.dependents\)\.Count\s+(?:#[^\n]*\s+)*"
        r"\$startShare = 0\s+\$parts = @\(\)\s+if \(\$runningDependents -gt 0\) \{[^\n]*\s+"
        r"if \(\$StartsAgain\) \{\s+\$toStart = @\(\(Get-MergedAgentRecord \$Folder \$record\)\.dependents\)\.Count\s+"
        r"\$startShare = 30 \* \(\$toStart \+ 1\)\s+[^\n]*\s+\}\s+"
        r"\$needed = 30 \* \$runningDependents \+ \$startShare\s+(?:#[^\n]*\s+)*[^\n]*\s+"
        r"\$left = Get-WaitBudget \(\$needed \+ \$MinimumStopWaitSeconds\)\s+"
        r"if \(\$left -lt \$needed \+ \$MinimumStopWaitSeconds\) \{[\s\S]*?"
        r"throw \(New-AgentStopError 'service_name' \"[^\n]*raise command_timeout_s in the connection settings, then "
        r"run again\" ''\)\s+\}\s+Write-AgentStopped \$Folder \$record",
        "W1, V3-V6, Z2: before a service is recorded or stopped, the budget must hold 30 s for each running "
        "dependent's stop inside Stop(), for set 30 s for each StartService after (its own and every dependent the "
        "merged record lists; remove starts nothing), and $MinimumStopWaitSeconds for its own stop; refused "
        "otherwise without the budget's note, naming command_timeout_s",
    ),
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"(?m)^\$MinimumStopWaitSeconds = 30$",
        "Z2: the shortest stop wait is 30 s",
    ),
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"\$stopped \+= 'service'\s+(?:#[^\n]*\s+)*"
        r"\$wait = Get-WaitBudgetBefore 120 \$needed\s+\$stopReturned = \$false\s+"
        r"try \{\s+\$service\[0\]\.Stop\(\)[\s\S]*?"
        r"if \(\$stopReturned\) \{\s+(?:#[^\n]*\s+)*"
        r"\$note = Get-BudgetNote\s+if \(\$wait -lt 120 -and \$needed -gt 0 -and -not \$note\) \{[\s\S]*?"
        r"\$note = \" \(the wait was cut to \$wait s to keep \$needed s [^\n]*raise command_timeout_s[^\n]*\s+\}\s+"
        r"\$failed = \"did not stop within \$wait s \(\$\(\$reason\.Message\)\)\"\s+"
        r"\} else \{\s+(?:#[^\n]*\s+)*\$note = ''\s+"
        r"\$failed = \"could not be stopped: ServiceController\.Stop\(\) failed [^\n]*\"\s+\}\s+"
        r"throw \(New-AgentStopError 'service_name' \"service '\$name' \$failed; [^\n]*\" \$note\)",
        "V1, Z3: the main service's stop wait is what is left past the $needed s reserve, taken before Stop(); a stop "
        "that timed out after a wait the reserve cut says so and names command_timeout_s; R3 (review-archive9): a "
        "Stop() that failed itself says which call failed, and (review-round2 V3) with no note: neither the budget "
        "nor command_timeout_s bears on it, and the wait never began",
    ),
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"function Get-WaitBudgetBefore\(\[int\] \$Seconds, \[int\] \$Later\) \{\s+(?:#[^\n]*\s+)*"
        r"return \[int\]\[Math\]::Max\(0, \(Get-WaitBudget \(\$Seconds \+ \$Later\)\) - \$Later\)\s+\}[\s\S]*?"
        r"function New-AgentStopError\(\[string\] \$Property, \[string\] \$Message, \[string\] \$Note = "
        r"\(Get-BudgetNote\)\) \{\s+(?:#[^\n]*\s+)*"
        r"return \(New-OperationError 'AgentStopFailed' \$Property \"\$Message\$Note\"\)",
        "V1, Z1: Get-WaitBudgetBefore keeps $Later s past the wait; V5: New-AgentStopError's note can be replaced",
    ),
    ScriptFact(
        _SET,
        r"\$dependentsLeft = @\(\$record\.dependents\)\.Count\s+\$servicesLeft = 0\s+"
        r"if \(\$record\.service\) \{ \$servicesLeft = 1 \+ \$dependentsLeft \}[\s\S]*?"
        r"Wait-PoolState \$pool 'Started' \(Get-WaitBudgetBefore 10 \(30 \* \$servicesLeft\)\)[\s\S]*?"
        r"\$main = Start-RecordedService \(\[string\]\$record\.service\) \$disabledThen \(30 \* \$dependentsLeft\)"
        r"[\s\S]*?foreach \(\$name in @\(\$record\.dependents\)\) \{\s+\$dependentsLeft--\s+if \(\$runs\) \{\s+"
        r"\$outcomes \+= Start-RecordedService \(\[string\]\$name\) \$false \(30 \* \$dependentsLeft\)[\s\S]*?"
        r"function Start-RecordedService\(\[string\] \$Name, \[bool\] \$DisabledThen, \[int\] \$LaterSeconds\)"
        r"[\s\S]*?\$reserve = \$LaterSeconds \+ 30\s+\$wait = Get-WaitBudgetBefore 60 \$reserve\s+"
        r"\$cutNote = Get-StartCutNote \$wait 60 \$reserve\s+[\s\S]*?"
        r"\$found\[0\]\.Start\(\)\s+\$wait = Get-WaitBudgetBefore 60 \$LaterSeconds\s+"
        r"\$cutNote = Get-StartCutNote \$wait 60 \$LaterSeconds\s+"
        r"\$found\[0\]\.WaitForStatus\(\[System\.ServiceProcess\.ServiceControllerStatus\]::Running, "
        r"\[TimeSpan\]::FromSeconds\(\$wait\)\)",
        "Z1: each capped wait of Start-Agent keeps 30 s for every StartService still to come; R2 (review-archive9): "
        "the wait for a start under way keeps 30 s more, for its own StartService when that start ends Stopped",
    ),
    ScriptFact(
        _SET,
        r"function Get-StartCutNote\(\[int\] \$Wait, \[int\] \$Asked, \[int\] \$Kept\) \{\s+(?:#[^\n]*\s+)*"
        r"if \(\$Wait -ge \$Asked -or \$Kept -le 0\) \{ return '' \}\s+"
        r"return \" \(the wait was cut to \$Wait s: this run's wait budget of \$RunBudgetSeconds s "
        r"\(of the connection's command_timeout_s of \$\(\[int\]\$Spec\.command_timeout_s\) s\) ran out for it, "
        r"as \$Kept s are held back for the StartService calls still to come \(up to 30 s each\); "
        r"raise command_timeout_s in the connection settings to give it more time, then run again\)\"\s+\}[\s\S]*?"
        r"\$cutNote = ''\s+try \{[\s\S]*?"
        r"\$cutNote = ''\s+\}[\s\S]*?"
        r"\$note = Get-BudgetNote\s+if \(-not \$note\) \{ \$note = \$cutNote \}\s+"
        r"\$problem = \"\$\(\$reason\.Message\)\$note\"",
        "R1 (review-archive9): a start wait that the reserve for the StartService calls after it cut says that the "
        "budget ran out for it and names command_timeout_s, while the budget's own note (the budget spent) comes "
        "first; no cut note for an error of Start() itself",
    ),
    ScriptFact(
        _SET,
        r"\$then = 'see the System event log \(WAS\), then start it'\s+"
        r"if \(Test-WasStopped\) \{ \$then = 'start the Windows Process Activation Service \(WAS\) first, then start "
        r"the pool \(see the System event log \(WAS\)\)' \}"
        r"\s+\$outcomes \+= [^\n]*did not start again \(\$problem\); \$then, or set its AutoStart to false",
        "V7, Z5: a pool's failed start says to start WAS first, then the pool, when WAS's service status is Stopped",
    ),
    ScriptFact(
        _SET,
        r"System\.TimeoutException \"it is still \$\(\$found\[0\]\.Status\) after \$wait s\"\)[\s\S]*?"
        r"\} catch \{\s+\$reason = \$_\.Exception\s+while [^\n]*\s+(?:#[^\n]*\s+)*"
        r"\$note = Get-BudgetNote\s+if \(-not \$note\) \{ \$note = \$cutNote \}\s+"
        r"\$problem = \"\$\(\$reason\.Message\)\$note\"",
        "W4: a service still starting is a time-out without the budget's note: the catch adds it (or R1's cut note), "
        "once",
    ),
    ScriptFact(
        ("runtime_archive/set", "runtime_archive/remove"),
        r"their budget of \$RunBudgetSeconds s, of the connection's command_timeout_s of "
        r"\$\(\[int\]\$Spec\.command_timeout_s\) s;",
        "W6: the budget's note takes both numbers from the input (wait_budget_s, command_timeout_s), no share of its "
        "own",
    ),
)


# -- the staging folder ---------------------------------------------------------------------------------


def staging_folder(runtime_path: str) -> str:
    """Get-StagingFolder (ToLowerInvariant and Python's lower() agree on the ASCII paths Windows setups use)."""
    key = hashlib.sha256(runtime_path.lower().encode("utf-8")).hexdigest()[:16]
    return f"{PROGRAM_DATA}\\UsercubeIac\\RuntimeArchive\\{key}"


def _read_json(fs: WindowsFs, path: str) -> Any:
    file = fs.resolve(path)
    return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else None


def _write_json(fs: WindowsFs, path: str, value: Any) -> None:
    """Write-JsonFile: written next to its place, then File.Replace (or File.Move the first time)."""
    temporary = fs.resolve(f"{path}.tmp")
    temporary.write_text(json.dumps(value, separators=(",", ":")), encoding="utf-8")
    os.replace(temporary, fs.resolve(path))


def _manifest(fs: WindowsFs, folder: str) -> dict[str, Any] | None:
    path = fs.resolve(f"{folder}\\manifest.json")
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _write_manifest(fs: WindowsFs, folder: str, manifest: dict[str, Any]) -> None:
    _write_json(fs, f"{folder}\\manifest.json", manifest)


def _kept_files(manifest: dict[str, Any]) -> list[str]:
    """Get-KeptFiles: the files the installation the manifest records kept."""
    return [str(name) for name in manifest.get("keep_files", FORMER_DEFAULT_KEPT_FILES)]


def _same_paths(left: list[str], right: list[str]) -> bool:
    """HashSet[string](OrdinalIgnoreCase).SetEquals: the same names in any order, case aside."""
    return {name.lower() for name in left} == {name.lower() for name in right}


def _state(fs: WindowsFs, spec: dict[str, Any]) -> dict[str, Any]:
    """Get-ArchiveState."""
    runtime = spec["runtime_path"]
    folder = staging_folder(runtime)
    state: dict[str, Any] = {
        "ensure": "absent",
        "runtime_path": runtime,
        "sha256": None,
        "archive_name": None,
        "file_count": 0,
        "missing_files": [],
        "kept_files": [],
        "held_bytes": 0,
        "held_sha256": None,
        "interrupted": [],
    }
    repair = staging.repair_needed(fs, folder, "runtime_path")
    if repair is not None:
        state["interrupted"].append(f"staging folder to repair: {repair}")
    record = _read_json(fs, f"{folder}\\agent-stopped.json")
    if record is not None:
        names = [record.get("pool"), record.get("service"), *(record.get("dependents") or [])]
        state["interrupted"] += [f"agent stopped: {name}" for name in names if name]
    if fs.resolve(f"{folder}\\swap.json").is_file():
        state["interrupted"].append("swap not finished")
    for work in (NEW_FOLDER, OLD_FOLDER):
        if fs.resolve(f"{runtime}\\{work}").is_dir():
            state["interrupted"].append(f"work folder left: {runtime}\\{work}")
    manifest = _manifest(fs, folder)
    if manifest is not None:
        files = list(manifest["files"])
        missing = [name for name in files if not fs.resolve(f"{runtime}\\{name}").is_file()]
        state.update(
            ensure="present",
            sha256=manifest["sha256"],
            archive_name=manifest["archive_name"],
            file_count=len(files),
            missing_files=missing[:20],
            kept_files=_kept_files(manifest),
        )
    partial = fs.resolve(partial_path(folder, spec["sha256"]))
    if repair is None and partial.is_file():
        state.update(held_bytes=partial.stat().st_size, held_sha256=staging.sha256_file(partial))
    return state


# -- the archive's entries -------------------------------------------------------------------------------


def _stop(error_id: str, message: str, prop: str) -> OperationStopped:
    return OperationStopped(fail(error_id, message, prop=prop))


def _open_archive(data: bytes, spec: dict[str, Any]) -> list[Entry]:
    """[ZipArchive]::new($stream, Read, $true), then its Entries (the central directory): a file that is no zip, or
    whose central directory is damaged (InvalidDataException), is ArchiveInvalid."""
    try:
        return open_stream(data)
    except DotNetError as error:
        raise _stop(
            "ArchiveInvalid",
            f"{spec['archive_name']} (SHA-256 {spec['sha256']}) is not a zip archive ({error.message}); set "
            "source_path to the agent's runtime .zip file",
            "source_path",
        ) from None


def _file_list(entries: list[Entry], runtime: str) -> list[str]:
    """Get-ArchiveFileList: every entry checked before anything is extracted."""
    files: list[str] = []
    seen: set[str] = set()
    for entry in entries:
        name = entry.full_name.replace("/", "\\")
        is_folder = name.endswith("\\")
        relative = name.rstrip("\\")
        parts = relative.split("\\")
        # (Windows drops a trailing dot or space from a name it creates, learn.microsoft.com "Naming Files".)
        bad = (
            part in ("", ".", "..")
            or _INVALID_NAME.search(part)
            or part.rstrip(". ") != part
            or _DEVICE_NAME.match(part)
            for part in parts
        )
        if not relative or any(bad):
            raise _stop(
                "ArchiveEntryRefused",
                f"the archive's entry '{entry.full_name}' is not a relative path inside the folder; this archive "
                "cannot be extracted safely",
                "sha256",
            )
        if parts[0].lower() in (NEW_FOLDER, OLD_FOLDER):
            raise _stop(
                "ArchiveEntryRefused",
                f"the archive's entry '{entry.full_name}' uses the name {parts[0]}, which the extraction needs for "
                "itself",
                "sha256",
            )
        longest = f"{runtime}\\{NEW_FOLDER}\\{relative}"
        if len(longest) > MAX_PATH:
            raise _stop(
                "ArchivePathTooLong",
                f"'{longest}' would be {len(longest)} characters; Windows PowerShell 5.1 (.NET Framework) handles at "
                "most 259: choose a shorter working directory",
                "runtime_path",
            )
        # .NET Framework's limit for a folder: fewer than 248 characters.
        parent = longest if is_folder else longest.rsplit("\\", 1)[0]
        if len(parent) > MAX_FOLDER:
            raise _stop(
                "ArchivePathTooLong",
                f"the folder '{parent}' would be {len(parent)} characters; Windows PowerShell 5.1 (.NET Framework) "
                "handles folders of at most 247: choose a shorter working directory",
                "runtime_path",
            )
        if is_folder:
            continue
        if relative.lower() in seen:
            raise _stop(
                "ArchiveEntryRefused", f"the archive holds '{relative}' twice (names ignore case on Windows)", "sha256"
            )
        seen.add(relative.lower())
        files.append(relative)
    return files


# -- the agent -------------------------------------------------------------------------------------------


def _journal(fs: WindowsFs, action: str, what: str, name: str) -> None:
    Journal(sim_dir(fs.root) / "journal.jsonl")({"kind": "agent", "action": action, "what": what, "name": name})


def _knob(fs: WindowsFs, name: str) -> Any:
    return read_knobs(fs.root).get(name)


class _RunBudget:
    """review-archive4 R3: Get-WaitBudget. set and remove start $RunClock at their top, and every wait of Stop-Agent
    and Start-Agent takes at most what is left of wait_budget_s (a share of the connection's command_timeout_s,
    providers.runtime_archive.model.wait_budget_s; both come in the input). The model's waits sleep through
    time.sleep, which tests may replace: the time a wait stands for counts (``passed``) even when it takes none."""

    def __init__(self, seconds: int, command_timeout_s: int) -> None:
        self.seconds = seconds
        self.command_timeout_s = command_timeout_s
        self._started = time.monotonic()
        self._modelled = 0.0  # the run's time as the waits stand for it

    def elapsed(self) -> float:
        return max(time.monotonic() - self._started, self._modelled)

    def cap(self, seconds: float) -> float:
        """Get-WaitBudget: ``seconds``, or the whole seconds left of the budget when fewer."""
        return max(0.0, min(seconds, float(math.floor(self.seconds - self.elapsed()))))

    def cap_before(self, seconds: float, later: float) -> float:
        """Get-WaitBudgetBefore: ``cap`` for a wait that uncapped waits of up to ``later`` s still follow (Stop()'s
        30 s per running dependent, StartService's 30 s per service started): what is left past them
        (review-archive6 V1, review-archive7 Z1)."""
        return max(0.0, self.cap(seconds + later) - later)

    def passed(self, since: float, seconds: float) -> None:
        """A wait that began at ``since`` (an elapsed()) stood for ``seconds``, real or not."""
        self._modelled = max(self._modelled, since + seconds)

    def sleep(self, seconds: float) -> None:
        since = self.elapsed()
        time.sleep(seconds)
        self.passed(since, seconds)

    def note(self) -> str:
        """Get-BudgetNote: '' while a whole second of the budget is left."""
        if self.cap(1) > 0:
            return ""
        return (
            f" (the wait was cut short: this run's waits had used their budget of {self.seconds} s, of the "
            f"connection's command_timeout_s of {self.command_timeout_s} s; raise command_timeout_s in the connection "
            "settings, then run again)"
        )


_BUDGET: contextvars.ContextVar[_RunBudget] = contextvars.ContextVar("runtime_archive_budget")


@contextlib.contextmanager
def _run_budget(spec: dict[str, Any]) -> Iterator[None]:
    """$RunClock and $RunBudgetSeconds at the top of set.ps1 and remove.ps1."""
    token = _BUDGET.set(_RunBudget(int(spec["wait_budget_s"]), int(spec["command_timeout_s"])))
    try:
        yield
    finally:
        _BUDGET.reset(token)


def _budget() -> _RunBudget:
    """The run's budget; a model function called on its own (outside set and remove) waits without one."""
    budget = _BUDGET.get(None)
    return budget if budget is not None else _RunBudget(10**9, 10**9)


def _agent_stop_failed(message: str, prop: str, note: str | None = None) -> _AgentError:
    """New-AgentStopError: AgentStopFailed, with the budget's note when it cut the wait short, or ``note`` in its
    place ('' for a refusal before any wait, review-archive6 V5)."""
    return _AgentError(fail("AgentStopFailed", f"{message}{_budget().note() if note is None else note}", prop=prop))


def _agent_pool_state(fs: WindowsFs, manager: iis.ServerManager, name: str) -> str:
    """Get-AgentPoolState: Get-IisObjectState, but Stopped when State cannot be read (Unknown) while WAS's service is
    Stopped (review-archive4 R1: no worker runs without WAS; devhost.iis.WasNotRunning); only Stopped, so that a WAS
    still starting (it may start the pool any moment) is waited out."""
    since = _budget().elapsed()
    state = object_state(lambda: manager.pool_state(name))
    if state == "Unknown":
        _budget().passed(since, STATE_READ_S)
        if _was_stopped(fs):
            return "Stopped"
    return state


def _was_stopped(fs: WindowsFs) -> bool:
    """Test-WasStopped: WAS's service status Stopped (a host without WAS counts as not stopped)."""
    was = scm.get(fs.root, "WAS")
    return was is not None and was.state == "Stopped"


def _stop_agent(fs: WindowsFs, spec: dict[str, Any], folder: str, *, starts_again: bool) -> list[str]:
    """Stop-Agent: agent-stopped.json is written (merged with one already there) before each stop, with the
    pool's AutoStart or the service's start type then. A pool that is Starting is waited for until it runs, then
    stopped; one already Stopping (or Unknown) is waited for until it is neither, without a record, then its worker's
    exit (review-archive3 N2). A service in StartPending or ContinuePending is waited for until its start ends either
    way (N3: a failed start is nothing to stop), its dependents in StartPending or StopPending before Stop() (N7); a
    Paused one is stopped as it is. The service goes
    through devhost.service_controller (ServiceController: Stop stops the dependents that are not Stopped first,
    on the cached DependentServices array, so those controllers are disposed only after it). The knob
    ``services_not_stopping`` names services that accept the stop and never finish it (StopPending):
    WaitForStatus(Stopped, 120 s) then throws System.ServiceProcess.TimeoutException (learn.microsoft.com
    ServiceController.WaitForStatus). ``starts_again``: $StartsAgain (set: Start-Agent follows; remove: nothing is
    started again, so no start is reserved, review-archive6 V4)."""
    stopped: list[str] = []
    budget = _budget()
    record: dict[str, Any] = {"pool": None, "auto_start": None, "service": None, "start_type": None, "dependents": []}
    if spec["app_pool"]:
        if not iis.is_installed(fs.root):
            raise OperationStopped(not_installed())
        manager = iis.ServerManager(fs.root)
        name = spec["app_pool"]
        pool = manager.find_pool(name)
        state = _agent_pool_state(fs, manager, name) if pool is not None else None
        if pool is not None and state in _PASSING:
            state = _wait_pool_state_left(fs, manager, pool, name, state)
            if state == "Stopped":  # not recorded (this run did not stop it); its worker's exit waited for
                _assert_pool_worker_exited(fs, name, started_again=False)
        if pool is not None and state == "Started":
            record["pool"] = name
            record["auto_start"] = manager.pool_value(pool, "autoStart") == "true"
            _write_record(fs, folder, record)
            manager.stop_pool(name)  # WAS: Stopped at once; its worker may still be exiting (devhost.iis)
            _journal(fs, "stop", "pool", name)
            stopped.append("pool")
    if spec["service_name"]:
        name = spec["service_name"]
        controllers = service_controller.get_services(fs.root)
        dependents: list[service_controller.ServiceController] = []
        try:
            found = [c for c in controllers if c.service_name.lower() == name.lower()]
            service = found[0] if found else None
            # Wait-ServiceStateLeft: until a start under way ends either way (Stopped: it failed, nothing to stop).
            pending = ("StartPending", "ContinuePending")
            if service is not None and service.status in pending:
                wait = budget.cap(60)
                if not service.wait_while(pending, wait):
                    raise _agent_stop_failed(
                        f"service '{name}' is still starting after {wait:g} s ({service.status}); see the System "
                        "event log, then run again",
                        "service_name",
                    )
            if service is not None and service.status == "StopPending":
                wait = budget.cap(120)
                try:  # (waited for, not recorded)
                    service.wait_for_status("Stopped", wait)
                except DotNetError:
                    raise _agent_stop_failed(
                        f"service '{name}' is still stopping after {wait:g} s more; see the System event log, end its "
                        "process, then run again",
                        "service_name",
                    ) from None
            elif service is not None and service.status != "Stopped":
                record.update(service=name, start_type=service.start_type)
                dependents = list(service.dependent_services)
                # Stop() would send a dependent in StartPending or StopPending a stop it refuses (1061): each waited
                # for first, one 60 s deadline for all, within the budget (the model's waits take no time).
                wait = budget.cap(60)
                for dependent in dependents:
                    if not dependent.wait_while(("StartPending", "StopPending"), wait):
                        raise _agent_stop_failed(
                            f"service '{name}' was not stopped: the service '{dependent.service_name}', which depends "
                            f"on it, is still {dependent.status} after {wait:g} s; see the System event log, then run "
                            "again",
                            "service_name",
                        )
                record["dependents"] = [d.service_name for d in dependents if d.status != "Stopped"]
                to_start = len(_merged_record(fs, folder, record)["dependents"]) if starts_again else None
                reserve = _stop_and_start_reserve(len(record["dependents"]), to_start)
                _assert_budget_holds_dependents(name, len(record["dependents"]), to_start, budget)
                _write_record(fs, folder, record)
                stopped.append("service")
                # review-archive6 V1: the reserve is held back from this wait, not only checked.
                wait = budget.cap_before(120, reserve)
                stop_returned = False
                try:
                    service.stop()
                    stop_returned = True
                    service.wait_for_status("Stopped", wait)
                except (DotNetError, scm.ScmError) as error:
                    # review-archive9 R3: which call failed. The cut note (Z3) only for the wait that timed out: a
                    # Stop() that failed itself (a refusal, or its own 30 s wait for a dependent) gets none, as no
                    # budget bears on it and raising command_timeout_s cannot help (review-round2 V3).
                    if stop_returned:
                        failed = f"did not stop within {wait:g} s ({error})"
                        note = _cut_note(wait, reserve, starts_again, budget)
                    else:
                        failed = (
                            f"could not be stopped: ServiceController.Stop() failed ({error}), before the wait of "
                            f"{wait:g} s for its stop began"
                        )
                        note = ""
                    raise _agent_stop_failed(
                        f"service '{name}' {failed}; see the System event log, stop it (or end its process), then run "
                        "again",
                        "service_name",
                        note,
                    ) from None
                finally:
                    for stopped_name in service.stopped:
                        _journal(fs, "stop", "service", stopped_name)
        finally:
            for controller in [*controllers, *dependents]:
                controller.dispose()
    return stopped


def _stop_and_start_reserve(running: int, to_start: int | None) -> int:
    """$needed: 30 s for each running dependent's stop inside Stop(), and, when the agent is started again
    (``to_start``: the dependents the merged record lists, review-archive6 V6; None for remove, V4), 30 s for each
    StartService after, the service's own included even without dependents (V3)."""
    return 30 * running + (30 * (to_start + 1) if to_start is not None else 0)


def _assert_budget_holds_dependents(name: str, running: int, to_start: int | None, budget: _RunBudget) -> None:
    """review-archive5 W1: Stop() waits up to 30 s for each running dependent inside the call (referencesource
    ServiceController.Stop), and each StartService of Start-Agent blocks up to 30 s (StartServiceCtrlDispatcher
    remarks); the service's own stop gets at least MINIMUM_STOP_WAIT_S past them (review-archive7 Z2):
    AgentStopFailed before anything is recorded or stopped when the budget cannot hold all three, without the
    budget's note (no wait was cut: review-archive6 V5)."""
    needed = _stop_and_start_reserve(running, to_start)
    parts = []
    if running > 0:
        parts.append(
            f"ServiceController.Stop() first stops its {running} running dependent services, waiting up to 30 s "
            "for each"
        )
    if to_start is not None:
        parts.append(
            f"starting it and the {to_start} services that depend on it again may take up to 30 s each (StartService)"
            if to_start > 0
            else "starting it again may take up to 30 s (StartService)"
        )
    parts.append(f"its own stop is given at least {MINIMUM_STOP_WAIT_S} s")
    left = budget.cap(needed + MINIMUM_STOP_WAIT_S)
    if left >= needed + MINIMUM_STOP_WAIT_S:
        return
    short = f"only {left:g} s are left" if left > 0 else "none is left"
    raise _agent_stop_failed(
        f"service '{name}' was not stopped, nor anything else: {'; '.join(parts)}: {needed + MINIMUM_STOP_WAIT_S} s "
        f"of this run's wait budget in all, but {short} of this run's wait budget of {budget.seconds} s (of the "
        f"connection's command_timeout_s of {budget.command_timeout_s} s); raise command_timeout_s in the connection "
        "settings, then run again",
        "service_name",
        "",
    )


def _cut_note(wait: float, reserve: int, starts_again: bool, budget: _RunBudget) -> str:
    """Stop-Agent's $note for a stop that timed out (review-archive7 Z3): the budget's note, or, while the budget
    still holds the reserve that cut the wait below its 120 s, what cut it and which setting to raise."""
    note = budget.note()
    if wait < 120 and reserve > 0 and not note:
        kept = "the stops and starts around it" if starts_again else "Stop()'s waits for the dependent services"
        note = (
            f" (the wait was cut to {wait:g} s to keep {reserve} s of this run's wait budget of {budget.seconds} s (of "
            f"the connection's command_timeout_s of {budget.command_timeout_s} s) for {kept}; raise command_timeout_s "
            "in the connection settings, then run again)"
        )
    return note


def _start_cut_note(wait: float, asked: float, kept: int) -> str:
    """Get-StartCutNote (review-archive9 R1): a start wait that the ``kept`` s held back for the StartService calls
    still to come cut below its ``asked`` s says that the budget ran out for it and which setting gives it more; ''
    otherwise (Get-BudgetNote says nothing while the budget still holds them)."""
    if wait >= asked or kept <= 0:
        return ""
    budget = _budget()
    return (
        f" (the wait was cut to {wait:g} s: this run's wait budget of {budget.seconds} s (of the connection's "
        f"command_timeout_s of {budget.command_timeout_s} s) ran out for it, as {kept} s are held back for the "
        "StartService calls still to come (up to 30 s each); raise command_timeout_s in the connection settings to "
        "give it more time, then run again)"
    )


def _write_record(fs: WindowsFs, folder: str, record: dict[str, Any]) -> None:
    """Write-AgentStopped: Get-MergedAgentRecord, written."""
    _write_json(fs, f"{folder}\\agent-stopped.json", _merged_record(fs, folder, record))


def _merged_record(fs: WindowsFs, folder: str, record: dict[str, Any]) -> dict[str, Any]:
    """Get-MergedAgentRecord: merged with the record already there, never in place of it (what it lists stays
    listed). A pool or service this run stops is recorded with this run's AutoStart or start type (review-archive3
    N1); the earlier entry keeps its own only when this run records none; the dependents are united."""
    earlier = _read_json(fs, f"{folder}\\agent-stopped.json")
    merged = {**record, "dependents": list(record["dependents"])}
    if earlier is not None:
        if earlier.get("pool") and not merged["pool"]:
            merged.update(pool=earlier["pool"], auto_start=earlier.get("auto_start"))
        if earlier.get("service") and not merged["service"]:
            merged.update(service=earlier["service"], start_type=earlier.get("start_type"))
        if earlier.get("service") and earlier["service"].lower() == (merged["service"] or "").lower():
            union: list[str] = []
            for dependent in [*(earlier.get("dependents") or []), *merged["dependents"]]:
                if dependent and dependent.lower() not in {n.lower() for n in union}:
                    union.append(dependent)
            merged["dependents"] = union
    return merged


class _AgentError(OperationStopped):
    """New-OperationError: an error with an id that ends nothing by itself (the caller reports it)."""


def _outcome(prop: str, name: str, outcome: str, *, failed: bool = False) -> dict[str, Any]:
    return {"property": prop, "name": name, "failed": failed, "outcome": outcome}


def _start_pool(fs: WindowsFs, name: str, auto_start_then: Any) -> dict[str, Any]:
    """Start-Agent for a pool: its entry (a failed start included)."""
    if not iis.is_installed(fs.root):
        raise OperationStopped(not_installed())  # Import-IisAdministration: the operation's end
    manager = iis.ServerManager(fs.root)
    pool = manager.find_pool(name)
    if pool is None:
        return _outcome("agent_pool", name, "gone (nothing to start)")
    if object_state(lambda: manager.pool_state(name)) == "Started":
        return _outcome("agent_pool", name, "running (started since)")
    # AutoStart false is how a pool is kept stopped (learn.microsoft.com applicationPools <add> autoStart).
    if auto_start_then is True and manager.pool_value(pool, "autoStart") != "true":
        return _outcome("agent_pool", name, "left stopped (its AutoStart was set to false since: stopped on purpose)")
    hint = "or set its AutoStart to false to keep it stopped (the next run then leaves it)"
    try:
        state = manager.start_pool(name)  # Wait-PoolState 'Started' within the budget: WAS starts it at once here
    except iis.IisError as error:
        # Start-Agent's catch: any error of Start() (WAS not running: iis.WasNotRunning) is a failed start, reported
        # with its message; set goes on (review-archive5 W2).
        return _outcome("agent_pool", name, f"did not start again ({error}); {_was_first(fs)}, {hint}", failed=True)
    _journal(fs, "start", "pool", name)
    if state != "Started":
        return _outcome(
            "agent_pool",
            name,
            f"did not start again (state {state}{_budget().note()}); {_was_first(fs)}, {hint}",
            failed=True,
        )
    return _outcome("agent_pool", name, "Started")


def _was_first(fs: WindowsFs) -> str:
    """Start-Agent's $then (review-archive6 V7): with WAS stopped, by its status, the pool starts only after it,
    named as the pool (review-archive7 Z5)."""
    if _was_stopped(fs):
        return (
            "start the Windows Process Activation Service (WAS) first, then start the pool (see the System event "
            "log (WAS))"
        )
    return "see the System event log (WAS), then start it"


def _start_service(fs: WindowsFs, name: str, disabled_then: bool, later: int) -> dict[str, Any]:
    """Start-RecordedService: its entry (a failed start included). ``later``: $LaterSeconds, the 30 s for each
    StartService still to come, kept from its waits (review-archive7 Z1; the model's StartService and its
    WaitForStatus(Running) take no time, so the pending start's wait is the one that shows it)."""
    service = scm.get(fs.root, name)
    if service is None:
        return _outcome("agent_service", name, "gone (nothing to start)")
    # Start-RecordedService's $hint, for every failure it reports. (StartService refuses a disabled service:
    # ERROR_SERVICE_DISABLED 1058, learn.microsoft.com StartService.)
    hint = "see the System event log, then start it, or disable it to keep it stopped (the next run then leaves it)"
    if disabled_then:
        hint = (
            "it was Disabled already when it was stopped (it ran nonetheless): set its start mode to Manual or "
            "Automatic to have it started, or delete it"
        )
    if service.state in ("StartPending", "ContinuePending"):
        # Being started (a delayed automatic start): StartService would fail with 1056 (learn.microsoft.com
        # StartService); Wait-ServiceStateLeft instead, then taken as it is (Stopped: that start failed, started here).
        controller = service_controller.ServiceController(fs.root, name, None)
        # review-archive9 R2: 30 s more kept, for the StartService below when that start ends Stopped.
        reserve = later + 30
        wait = _budget().cap_before(60, reserve)
        if not controller.wait_while(("StartPending", "ContinuePending"), wait):
            note = _budget().note() or _start_cut_note(wait, 60, reserve)
            return _outcome(
                "agent_service",
                name,
                f"did not start again (it is still {controller.status} after {wait:g} s{note}); {hint}",
                failed=True,
            )
        service = scm.get(fs.root, name)
        assert service is not None
    if service.state not in ("Stopped", "StopPending"):  # Running, or paused since
        return _outcome("agent_service", name, "running (started since)")
    if service.start_mode == "Disabled" and not disabled_then:
        return _outcome("agent_service", name, "left stopped (its start mode is Disabled)")
    try:
        scm.start(fs.root, name)
    except scm.ScmError as error:
        # ServiceController.Start: InvalidOperationException "Cannot start service <name> on computer '.'."
        # whose inner Win32Exception carries the system message; the script reports the innermost one, with the
        # budget's note (its catch adds Get-BudgetNote to every error; no wait was under way, so no cut note). The
        # model's StartService succeeds at once: the WaitForStatus(Running) after it, and its cut note, never fail.
        return _outcome("agent_service", name, f"did not start again ({error}{_budget().note()}); {hint}", failed=True)
    _journal(fs, "start", "service", name)
    return _outcome("agent_service", name, "Started")


def _start_agent(fs: WindowsFs, folder: str) -> list[dict[str, Any]]:
    """Start-Agent: finishes what agent-stopped.json lists (unless gone, running, or stopped on purpose since);
    the dependents get the service's outcome when it does not run (StartService would fail with 1068 or 1075);
    the record is deleted only when nothing failed. One entry per pool or service."""
    record = _read_json(fs, f"{folder}\\agent-stopped.json")
    if record is None:
        return []
    outcomes: list[dict[str, Any]] = []
    # review-archive7 Z1: each capped wait keeps 30 s for every StartService still to come. (The pool's
    # Wait-PoolState keeps 30 s for each recorded service too; the model's pool start takes no time.)
    dependents_left = len(record.get("dependents") or [])
    if record.get("pool"):
        outcomes.append(_start_pool(fs, record["pool"], record.get("auto_start")))
    if record.get("service"):
        main = _start_service(fs, record["service"], record.get("start_type") == "Disabled", 30 * dependents_left)
        outcomes.append(main)
        runs = main["outcome"] in ("Started", "running (started since)")
        for name in record.get("dependents") or []:
            dependents_left -= 1
            if runs:
                outcomes.append(_start_service(fs, name, False, 30 * dependents_left))
            else:
                outcomes.append(
                    _outcome(
                        "agent_service",
                        name,
                        f"not started: it depends on service '{main['name']}', which {main['outcome']}",
                        failed=main["failed"],
                    )
                )
    if not any(entry["failed"] for entry in outcomes):
        _delete(fs, f"{folder}\\agent-stopped.json")
    return outcomes


def _start_report(outcomes: list[dict[str, Any]]) -> str:
    """Get-StartReport."""
    return "; ".join(f"{entry['name']}: {entry['outcome']}" for entry in outcomes)


def _shutdown_wait(manager: iis.ServerManager, element: Any) -> float:
    """Get-PoolShutdownWait: the pool's shutdownTimeLimit and 30 s more, at most 150 s."""
    return min(
        timespan_s(manager.pool_value(element, "processModel/shutdownTimeLimit")) + SHUTDOWN_WAIT_MARGIN_S,
        SHUTDOWN_WAIT_MAX_S,
    )


def _wait_pool_state_left(fs: WindowsFs, manager: iis.ServerManager, element: Any, name: str, state: str) -> str:
    """Wait-PoolStateLeft @('Starting', 'Stopping', 'Unknown') within Get-PoolShutdownWait (capped by the run's
    budget), one loop until Started or Stopped whatever the order (review-archive4 R2): WAS finishes a start (or fails
    it); a Stopping pool stays so while its worker drains (devhost.iis.begin_stop_pool; fileops.worker_exit_at), then
    WAS reports it Stopped; Unknown is read again (Get-AgentPoolState: each read that throws costs 5 s). Still in one
    of them at the deadline: AgentStopFailed (nothing recorded)."""
    budget = _budget()
    wait = budget.cap(_shutdown_wait(manager, element))
    waited = 0.0
    while state in _PASSING and waited < wait:
        if state == "Starting":
            state = manager.start_pool(name)  # WAS finishes the start, or fails it (Stopped)
        elif state == "Stopping":
            exit_at = worker_exit_at(fs.root, name)
            drain = max(0.0, exit_at - time.time()) if exit_at is not None else 0.0
            step = min(drain, wait - waited)
            budget.sleep(step)
            waited += step
            if drain <= step:
                state = manager.stop_pool(name)  # the worker has exited: WAS finishes the stop
        else:
            state = _agent_pool_state(fs, manager, name)
            waited += STATE_READ_S
    if state in _PASSING:
        raise _agent_stop_failed(
            f"application pool '{name}' is still in state {state} after {wait:g} s; see the System event log (WAS), "
            "then run again",
            "app_pool",
        )
    return state


def _wait_pool_worker_exit(fs: WindowsFs, pool: str) -> int:
    """Wait-PoolWorkerExit: until the pool lists no worker process (devhost.fileops.worker_exit_at: WAS ends it at
    its shutdownTimeLimit), within Get-PoolShutdownWait (that limit and 30 s more, at most 150 s) capped by the run's
    budget, in real time. Returns how many workers the pool still lists (one exiting worker is modelled: 0 or 1)."""
    manager = iis.ServerManager(fs.root)
    element = manager.find_pool(pool)
    exit_at = worker_exit_at(fs.root, pool)
    if element is None or exit_at is None:
        return 0
    budget = _budget()
    limit = budget.cap(_shutdown_wait(manager, element))
    drain = exit_at - time.time()
    budget.sleep(max(0.0, min(drain, limit)))
    return 1 if drain > limit else 0


def _assert_pool_worker_exited(fs: WindowsFs, pool: str, *, started_again: bool) -> None:
    """Assert-PoolWorkerExited: AgentStopFailed when a worker still runs after the wait (never a swap beside it);
    ``started_again``: this run stopped the pool, and set starts it again from the record (review-archive4 R4)."""
    left = _wait_pool_worker_exit(fs, pool)
    if left:
        after = "nothing was replaced beside them"
        if started_again:
            # Said before the start is tried: set's message says what it did (review-archive5 W5).
            after = (
                "nothing was replaced beside them, and this run then tries to start the pool again (the outcome "
                "follows; once it runs, the next run would wait for the same drain)"
            )
        raise _agent_stop_failed(
            f"application pool '{pool}' is stopped, but {left} of its worker processes (w3wp.exe) still ran after the "
            f"wait (its shutdownTimeLimit and 30 s, at most 150 s), draining their requests; {after}. Lower the "
            "pool's shutdownTimeLimit to 120 s or less, or end the draining w3wp.exe before the run, then run again",
            "app_pool",
        )


def _extract(fs: WindowsFs, data: bytes, entries: list[Entry], new: str, keep: set[str]) -> None:
    """The extraction entry by entry (names checked by _file_list), never a kept file (keep: lower case)."""
    fs.resolve(new).mkdir(parents=True, exist_ok=True)
    for entry in entries:
        name = entry.full_name.replace("/", "\\")
        target = f"{new}\\{name.rstrip(chr(92))}"
        if name.endswith("\\"):
            if entry.length != 0:
                raise DotNetError(
                    "System.IO.IOException", "Zip entry name ends in directory separator character but contains data."
                )
            fs.resolve(target).mkdir(parents=True, exist_ok=True)
            continue
        if name.lower() in keep:
            continue
        fs.resolve(target).parent.mkdir(parents=True, exist_ok=True)
        extract_entry(fs, data, entry, target)


def _trap(error: DotNetError, method: str, arguments: int) -> OperationStopped:
    """An exception the script does not catch: the prelude's trap reports PowerShell's wrapper message."""
    return OperationStopped(fail("UnexpectedError", error.called(method, arguments), category="NotSpecified"))


def _delete(fs: WindowsFs, path: str) -> None:
    """[System.IO.File]::Delete($path), outside any try: a failure ends the operation through the trap."""
    try:
        delete_file(fs, path)
    except DotNetError as error:
        raise _trap(error, "Delete", 1) from None


def _remove_tree(fs: WindowsFs, path: str) -> None:
    try:
        remove_tree(fs, path)
    except DotNetError as error:
        raise _trap(error, "Delete", 0) from None


def _remove_tree_best_effort(fs: WindowsFs, path: str) -> bool:
    """Remove-TreeBestEffort: retried for about 5 s; a held image outlives that here (the knob
    pool_worker_exit_s is meant in tens of seconds), so one attempt stands for them all."""
    try:
        remove_tree(fs, path)
    except DotNetError:
        return False
    return True


def _remove_files(fs: WindowsFs, paths: list[str]) -> list[tuple[str, str]]:
    """Remove-Files: each file deleted; a running program's mapped image is refused (devhost.fileops, after
    learn.microsoft.com "Executable Images"). The script retries for about 6 s; a held image outlives that
    here (the knob pool_worker_exit_s is meant in tens of seconds), so one attempt stands for them all.
    Returns the files left, with the innermost error's message."""
    left: list[tuple[str, str]] = []
    for path in paths:
        try:
            delete_file(fs, path)
        except DotNetError as error:
            left.append((path, error.message))
    return left


def _undo_swap(fs: WindowsFs, moves: list[list[str]]) -> list[str]:
    """Undo-Swap: newest first, each move undone where it was done; errors collected, not raised."""
    errors: list[str] = []
    for origin, moved in reversed(moves):
        if not fs.resolve(moved).is_file() or fs.resolve(origin).is_file():
            continue
        try:
            fs.resolve(origin).parent.mkdir(parents=True, exist_ok=True)
            move_file(fs, moved, origin)
        except DotNetError as error:
            errors.append(f"{moved} -> {origin} ({error.called('Move', 2)})")
    return errors


def _restore_interrupted_swap(
    fs: WindowsFs, spec: dict[str, Any], runtime: str, folder: str, *, starts_again: bool
) -> list[str]:
    """Restore-InterruptedSwap: undone with the agent stopped (recorded: the caller starts it again); returns
    what it stopped."""
    stopped: list[str] = []
    journal = _read_json(fs, f"{folder}\\swap.json")
    manifest = _manifest(fs, folder)
    committed = manifest is not None and manifest["sha256"] == journal["sha256"]
    if committed and manifest is not None and "keep_files" in journal:  # (a journal from before: sha256 alone)
        committed = _same_paths(_kept_files(manifest), journal["keep_files"])
    if not committed:
        stopped = _stop_agent(fs, spec, folder, starts_again=starts_again)
        errors = _undo_swap(fs, journal["moves"])
        if errors:
            raise _stop(
                "SwapRollbackIncomplete",
                f"an interrupted installation could not be undone: {'; '.join(errors)}. The files not put back are in "
                f"{runtime}\\{OLD_FOLDER}, which was kept; put them back by hand, delete {folder}\\swap.json, then "
                "run again (what the installation stopped stays stopped until then: it would run a mix of both "
                "versions)",
                "runtime_path",
            )
    _remove_tree_best_effort(fs, f"{runtime}\\{NEW_FOLDER}")
    _delete(fs, f"{folder}\\swap.json")
    return stopped


def _remove_empty_parents(fs: WindowsFs, runtime: str, relative: list[str]) -> None:
    """Remove-EmptyParents."""
    folders: set[str] = set()
    for file in relative:
        parent = file.rsplit("\\", 1)[0] if "\\" in file else ""
        while parent:
            folders.add(parent)
            parent = parent.rsplit("\\", 1)[0] if "\\" in parent else ""
    for folder in sorted(folders, key=len, reverse=True):
        full = fs.resolve(f"{runtime}\\{folder}")
        if full.is_dir() and not any(full.iterdir()):
            delete_empty_folder(fs, f"{runtime}\\{folder}")


def _error_report(error: DotNetError | OperationStopped) -> dict[str, str]:
    """Get-ErrorReport: an operation's end gives its id, property and message; any other error its innermost
    exception's message (a DotNetError's own message, without PowerShell's wrapper)."""
    if isinstance(error, OperationStopped):
        reported = error.envelope.error or {}
        return {
            "id": reported.get("id") or "",
            "property": reported.get("property") or "",
            "message": reported["message"],
        }
    return {"id": "", "property": "", "message": error.message}


def _cleanup(fs: WindowsFs, steps: list[Any]) -> list[str]:
    """Each step in its own try: its error is collected (secondary), never raised."""
    errors: list[str] = []
    for step in steps:
        try:
            step()
        except DotNetError as error:
            errors.append(error.message)
    return errors


def _agent_label(spec: dict[str, Any]) -> str:
    return f"application pool '{spec['app_pool']}'" if spec["app_pool"] else f"service '{spec['service_name']}'"


# -- the operations --------------------------------------------------------------------------------------


@operation
def get(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    return succeed(_state(fs, spec))


@operation
def chunk(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _CHUNK_KEYS)
    return staging.chunk(fs, spec, staging_folder(spec["runtime_path"]), "runtime_path")


@operation
def set_(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    with _run_budget(spec):
        return _set(fs, spec)


def _set(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    runtime, sha = spec["runtime_path"], spec["sha256"]
    folder = staging_folder(runtime)
    staging.initialize(fs, folder, "runtime_path")
    new, old = f"{runtime}\\{NEW_FOLDER}", f"{runtime}\\{OLD_FOLDER}"
    recovered = []
    if fs.resolve(f"{folder}\\swap.json").is_file():
        try:
            _restore_interrupted_swap(fs, spec, runtime, folder, starts_again=True)
        except _AgentError as error:
            return error.envelope
        recovered.append(change("interrupted_swap", "pending", "finished"))
    # A failed start does not stop the run: reported, its record kept, and the installation goes on.
    for start in _start_agent(fs, folder):
        recovered.append(change(start["property"], f"{start['name']}: stopped by an interrupted run", start["outcome"]))
    before = _state(fs, spec)
    kept_as_before = _same_paths(list(spec["keep_files"]), before["kept_files"])
    if before["sha256"] == sha and not before["missing_files"] and kept_as_before:
        for work in (new, old):
            if fs.resolve(work).is_dir() and _remove_tree_best_effort(fs, work):
                recovered.append(change("work_folder", work, None))
        return succeed(_state(fs, spec), recovered)
    partial = partial_path(folder, sha)
    if before["held_bytes"] != int(spec["size"]):
        return fail(
            "ArchiveNotUploaded",
            f"the host holds {before['held_bytes']} of the archive's {spec['size']} bytes; upload it first (the chunk "
            "operation)",
            prop="sha256",
        )
    if before["held_sha256"] != sha:
        _delete(fs, partial)
        return fail(
            "ArchiveHashMismatch",
            f"the uploaded file has SHA-256 {before['held_sha256']}, not {sha}; it was deleted, and the next run "
            "uploads it again",
            prop="sha256",
        )
    # One handle (FileShare.Read: no one else may write, rename or delete the file while it is open,
    # learn.microsoft.com CreateFile dwShareMode) for the hash and the extraction: its bytes, read once.
    data = fs.resolve(partial).read_bytes()
    held_sha = hashlib.sha256(data).hexdigest()
    if held_sha != sha:
        _delete(fs, partial)
        return fail(
            "ArchiveHashMismatch",
            f"the uploaded file has SHA-256 {held_sha}, not {sha}; it was deleted, and the next run uploads it again",
            prop="sha256",
        )
    entries = _open_archive(data, spec)
    keep = {str(name).lower() for name in spec["keep_files"]}
    files = [name for name in _file_list(entries, runtime) if name.lower() not in keep]
    incoming = {name.lower() for name in files}
    manifest = _manifest(fs, folder)
    previous = list(manifest["files"]) if manifest is not None else []
    obsolete = [
        name
        for name in previous
        if name.lower() not in incoming and name.lower() not in keep and fs.resolve(f"{runtime}\\{name}").is_file()
    ]
    replaced = [name for name in files if fs.resolve(f"{runtime}\\{name}").is_file()]

    changes = list(recovered)
    if not fs.resolve(runtime).is_dir():
        fs.resolve(runtime).mkdir(parents=True)
        changes.append(change("runtime_path", None, runtime))
    for work in (new, old):
        if not _remove_tree_best_effort(fs, work):
            return fail(
                "WorkFolderBusy",
                f"{work}, left by the previous installation, cannot be deleted yet (a program still holds a file in "
                "it); nothing was changed: run again in a minute",
                prop="runtime_path",
            )
    try:
        _extract(fs, data, entries, new, keep)
    except DotNetError as error:
        cleanup = ""
        for problem in _cleanup(fs, [lambda: remove_tree(fs, new)]):
            cleanup = f" Deleting what was extracted failed too: {problem} (the next run deletes it)."
        return fail(
            "ExtractionFailed",
            f"extracting {spec['archive_name']} failed: {error.message} The version in {runtime} was not touched and "
            f"still runs.{cleanup}",
            prop="sha256",
        )

    plan = [[f"{runtime}\\{name}", f"{old}\\{name}"] for name in [*replaced, *obsolete]]
    plan += [[f"{new}\\{name}", f"{runtime}\\{name}"] for name in files]
    # Every error of the swap is caught and kept; the first is what the user sees (Get-ErrorReport).
    stopped: list[str] = []
    first: dict[str, str] | None = None
    swap_begun = False
    try:
        if replaced or obsolete:
            stopped = _stop_agent(fs, spec, folder, starts_again=True)
        if "pool" in stopped:  # its draining worker may still load an assembly from Runtime: waited for
            _assert_pool_worker_exited(fs, spec["app_pool"], started_again=True)
        _write_json(fs, f"{folder}\\swap.json", {"sha256": sha, "keep_files": list(spec["keep_files"]), "moves": plan})
        swap_begun = True
        for origin, target in plan:
            fs.resolve(target).parent.mkdir(parents=True, exist_ok=True)
            move_file(fs, origin, target)  # Move-FileWithRetry: a held file stays held
        _write_manifest(
            fs,
            folder,
            {
                "sha256": sha,
                "archive_name": spec["archive_name"],
                "files": files,
                "keep_files": list(spec["keep_files"]),
            },
        )
    except (DotNetError, _AgentError) as error:  # (an operation's end, IisNotInstalled, goes on as it is)
        first = _error_report(error)
    undo_errors = _undo_swap(fs, plan) if first is not None else []
    # Started again once a whole version is in place; after an incomplete undo it stays stopped (record kept).
    started = _start_agent(fs, folder) if not undo_errors else []
    start_failed = any(entry["failed"] for entry in started)
    if first is not None:
        if undo_errors:
            agent = "nothing had to be stopped for it"
            if stopped:
                agent = f"the agent ({_agent_label(spec)}) was left stopped: it would run a mix of both versions"
            return fail(
                "SwapRollbackIncomplete",
                f"installing {spec['archive_name']} in {runtime} failed: {first['message']} Putting the previous "
                f"version back failed too: {'; '.join(undo_errors)}. The files not put back are in {old}, which was "
                f"kept; {agent}. The next run puts them back, then starts what it stopped",
                prop="runtime_path",
            )
        cleanup_errors = _cleanup(fs, [lambda: delete_file(fs, f"{folder}\\swap.json"), lambda: remove_tree(fs, new)])
        if not _remove_tree_best_effort(fs, old):
            cleanup_errors.append(f"{old} is still held (the next run deletes it)")
        # What the start did, as it happened: "runs again" only when everything recorded runs.
        agent = "the previous version is in place"
        if start_failed:
            agent = f"the previous version is in place, but starting the agent again failed: {_start_report(started)}"
        elif any(entry["outcome"] not in ("Started", "running (started since)") for entry in started):
            agent = f"the previous version is in place; the agent: {_start_report(started)}"
        elif started:
            agent = "the previous version runs again"
        undone = "Every file was put back" if swap_begun else "Nothing in Runtime was changed"
        message = f"installing {spec['archive_name']} in {runtime} failed: {first['message']} {undone}; {agent}."
        if cleanup_errors:
            message += f" Cleaning up failed too: {'; '.join(cleanup_errors)}."
        if first["id"]:
            return fail(first["id"], message, prop=first["property"])
        return fail("SwapFailed", message, prop="sha256")
    # Committed: a failed start is a change, not this resource's failure (the settings files and the service that
    # depend on the archive must still be written; AgentVerification reports the agent down). Cleanup errors are
    # reported as a change too, never as the operation's failure.
    cleanup_errors = _cleanup(fs, [lambda: delete_file(fs, f"{folder}\\swap.json")])
    _remove_tree_best_effort(fs, new)
    old_gone = _remove_tree_best_effort(fs, old)
    cleanup_errors += _cleanup(
        fs, [lambda: _remove_empty_parents(fs, runtime, obsolete), lambda: delete_file(fs, partial)]
    )
    changes.append(change("sha256", before["sha256"], sha))
    changes.append(change("files", len(previous), len(files)))
    if before["ensure"] == "present" and not kept_as_before:
        changes.append(change("keep_files", ", ".join(before["kept_files"]), ", ".join(spec["keep_files"])))
    if obsolete:
        changes.append(change("removed_files", len(obsolete), 0))
    for start in started:
        changes.append(change(start["property"], f"{start['name']}: stopped for the upgrade", start["outcome"]))
    if not old_gone:
        changes.append(change("work_folder", None, f"{old} (still held by the exiting agent; the next run deletes it)"))
    if cleanup_errors:
        changes.append(change("cleanup", None, f"not finished (the next run finishes it): {'; '.join(cleanup_errors)}"))
    return succeed(_state(fs, spec), changes)


@operation
def remove(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    require_keys(spec, _KEYS)
    with _run_budget(spec):
        return _remove(fs, spec)


def _remove(fs: WindowsFs, spec: dict[str, Any]) -> Envelope:
    runtime = spec["runtime_path"]
    folder = staging_folder(runtime)
    staging.assert_trusted(fs, folder, "runtime_path")
    restore_stopped: list[str] = []
    if fs.resolve(f"{folder}\\swap.json").is_file():  # swap.json alone lists the new files moved in
        try:
            restore_stopped = _restore_interrupted_swap(fs, spec, runtime, folder, starts_again=False)
        except _AgentError as error:
            return error.envelope
    before = _state(fs, spec)
    present: list[str] = []
    if before["ensure"] == "present":
        manifest = _manifest(fs, folder)
        assert manifest is not None
        present = [name for name in manifest["files"] if fs.resolve(f"{runtime}\\{name}").is_file()]
    stopped: list[str] = []
    dependents: list[str] = []
    if present:
        stop_error: _AgentError | None = None
        try:
            stopped = _stop_agent(fs, spec, folder, starts_again=False)  # not started again: its program is gone
        except _AgentError as error:
            stop_error = error
        stopped = [*restore_stopped, *stopped]
        # Its dependents, stopped with it, stay stopped (starting one would start it first): named in the result.
        record = _read_json(fs, f"{folder}\\agent-stopped.json")
        dependents = [name for name in (record or {}).get("dependents") or [] if name]
        _delete(fs, f"{folder}\\agent-stopped.json")
        if stop_error is not None:
            return stop_error.envelope
        if "pool" in stopped:
            _wait_pool_worker_exit(fs, spec["app_pool"])
    held = _remove_files(fs, [f"{runtime}\\{name}" for name in present])
    if held:
        hint = (
            "Stop the program that runs from it (the agent: give its app_pool or service_name to have it stopped), "
            "then run the removal again."
        )
        if stopped:
            hint = (
                f"The agent ({_agent_label(spec)}) was stopped, and its process may still be exiting (a pool's worker "
                "waits up to its shutdownTimeLimit, 90 s by default): run the removal again in a minute."
            )
        if dependents:
            hint += f" The services that depend on it were stopped too: {', '.join(dependents)}."
        others = " and others" if len(held) > 1 else ""
        return fail(
            "RuntimeFilesInUse",
            f"{len(held)} of the archive's files in {runtime} could not be deleted, as a program still holds them (a "
            f"running program maps its images): {held[0][0]} ({held[0][1]}){others}. {hint} The other files were "
            "deleted.",
            prop="runtime_path",
        )
    _remove_empty_parents(fs, runtime, present)
    for work in (NEW_FOLDER, OLD_FOLDER):
        if not _remove_tree_best_effort(fs, f"{runtime}\\{work}"):
            return fail(
                "RuntimeFilesInUse",
                f"{runtime}\\{work}, left by an upgrade, still holds files a program maps (the previous version's, "
                "while its worker exits); the archive's files were deleted: run the removal again in a minute",
                prop="runtime_path",
            )
    _remove_tree(fs, folder)
    ntfs.NtfsStore(fs.root).forget(folder)
    after = _state(fs, spec)
    if before["ensure"] == "absent" and not present:
        return succeed(after)
    changes = [change("ensure", before["ensure"], "absent"), change("files", len(present), 0)]
    for dependent in dependents:
        changes.append(
            change(
                "dependent_service",
                f"{dependent}: running",
                f"stopped with service '{spec['service_name']}', which stays stopped (its program is gone)",
            )
        )
    return succeed(after, changes)


OPERATIONS = {
    "runtime_archive/get": get,
    "runtime_archive/chunk": chunk,
    "runtime_archive/set": set_,
    "runtime_archive/remove": remove,
}
