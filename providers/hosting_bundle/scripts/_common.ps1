# Helpers shared by the HostingBundle scripts: what the host has, where the installer is staged, what to do.
#
# The installer is staged in a folder only SYSTEM and Administrators can read or write: it runs elevated, and a
# folder other accounts could write to would let them swap the file or plant a DLL beside it. Every level from
# %ProgramData%\UsercubeIac down is owned by Administrators with a protected DACL, or refused (the shared upload
# helpers, scripting/ps/_upload.ps1 and _admin_folders.ps1):
#   %ProgramData%\UsercubeIac\HostingBundle\upload-<sha256>.partial    the installer while it travels
#   %ProgramData%\UsercubeIac\HostingBundle\<sha256>\<installer name>  the complete installer, its hash checked
#   %ProgramData%\UsercubeIac\HostingBundle\<sha256>\install.log       the installer's own log (/log)
# The installer's own restart request (exit 3010 or 1641) is a volatile registry key, gone when the host restarts:
#   HKLM\SOFTWARE\UsercubeIac\HostingBundle\RestartOwed
# (earlier versions kept %ProgramData%\UsercubeIac\HostingBundle\restart-required.json with the boot time instead:
# see Test-InstallerRestartPending).
{% include '_upload.ps1' %}

$SharedFramework = 'HKLM:\SOFTWARE\Microsoft\ASP.NET Core\Shared Framework'

function Get-StagingRoot {
    return [System.IO.Path]::Combine([Environment]::GetFolderPath('CommonApplicationData'), 'UsercubeIac', 'HostingBundle')
}

function Get-InstallerFolder([string] $Root, [string] $Sha256) {
    return [System.IO.Path]::Combine($Root, $Sha256)
}

function Initialize-StagingFolder([string] $Folder) {
    # Created admin-only, or checked: refused (StagingFolderUntrusted) or its DACL put back. No setting to name:
    # the fix is on the host.
    Initialize-AdminOnlyFolder $Folder ''
}

function Test-StagingTrusted([string] $Folder) {
    # get changes nothing: what a folder that is not (yet) safe holds is not counted as uploaded; chunk and set
    # then repair it or refuse it.
    foreach ($path in (Get-AdminFolderLevels $Folder)) {
        if (-not [System.IO.Directory]::Exists($path)) { return $true }
        if ($null -ne (Get-UntrustedReason $path)) { return $false }
    }
    return $true
}

function Get-InstalledRuntimes {
    # The hosting bundle's ASP.NET Core runtime registers each version as
    # HKLM:\SOFTWARE\Microsoft\ASP.NET Core\Shared Framework\v<major.minor>\<version>, in the 64-bit view a 64-bit
    # IIS worker uses (dotnet/aspnetcore src/Installers/Windows/SharedFramework/Product.wxs); IisPrerequisites
    # reads the same keys.
    $found = New-Object 'System.Collections.Generic.List[version]'
    if (Test-Path -LiteralPath $SharedFramework) {
        foreach ($family in Get-ChildItem -LiteralPath $SharedFramework) {
            foreach ($release in Get-ChildItem -LiteralPath $family.PSPath) {
                $parsed = $null
                if ([version]::TryParse($release.PSChildName, [ref]$parsed)) { $found.Add($parsed) }
            }
        }
    }
    return , $found.ToArray()
}

function Get-InstalledNetCoreRuntimes {
    # The .NET runtime (Microsoft.NETCore.App) the bundle installs beside ASP.NET Core: its installer records each
    # version as a value named after it under SOFTWARE\dotnet\Setup\InstalledVersions\x64\sharedfx\
    # Microsoft.NETCore.App in the 32-bit registry view (WOW6432Node seen from 64 bits), where Microsoft's
    # dotnet/project-system reads it (NetCoreRuntimeVersionsRegistryReader.cs). Opened in that view explicitly,
    # whatever the bitness of this powershell.exe (RegistryKey.OpenBaseKey, RegistryView.Registry32).
    $found = New-Object 'System.Collections.Generic.List[version]'
    $base = [Microsoft.Win32.RegistryKey]::OpenBaseKey([Microsoft.Win32.RegistryHive]::LocalMachine, [Microsoft.Win32.RegistryView]::Registry32)
    try {
        $key = $base.OpenSubKey('SOFTWARE\dotnet\Setup\InstalledVersions\x64\sharedfx\Microsoft.NETCore.App')
        if ($null -ne $key) {
            try {
                foreach ($name in $key.GetValueNames()) {
                    $parsed = $null
                    if ([version]::TryParse($name, [ref]$parsed)) { $found.Add($parsed) }
                }
            } finally {
                $key.Dispose()
            }
        }
    } finally {
        $base.Dispose()
    }
    return , $found.ToArray()
}

function Get-NewestOfFamily([version[]] $Versions, [version] $Requested) {
    # An app built for 8.0 rolls forward to the newest 8.0.x, never to 9.0 (the runtime's default roll-forward
    # policy, learn.microsoft.com "Select the .NET version to use"): only the same major.minor counts.
    $newest = $null
    foreach ($candidate in $Versions) {
        if ($candidate.Major -eq $Requested.Major -and $candidate.Minor -eq $Requested.Minor) {
            if ($null -eq $newest -or $candidate -gt $newest) { $newest = $candidate }
        }
    }
    return $newest
}

function Test-IisInstalled {
    $inetStp = Get-ItemProperty -LiteralPath 'HKLM:\SOFTWARE\Microsoft\InetStp' -ErrorAction SilentlyContinue
    return ($null -ne $inetStp -and $null -ne $inetStp.PSObject.Properties['MajorVersion'])
}

function Test-AspNetCoreModule {
    Import-IisAdministration
    $manager = New-Object Microsoft.Web.Administration.ServerManager
    try {
        $modules = $manager.GetApplicationHostConfiguration().GetSection('system.webServer/globalModules').GetCollection()
        return (@($modules | Where-Object { $_['name'] -eq 'AspNetCoreModuleV2' }).Count -gt 0)
    } finally {
        $manager.Dispose()
    }
}

# A volatile key (RegCreateKeyEx REG_OPTION_VOLATILE: "the information is stored in memory and is not preserved
# when the corresponding registry hive is unloaded", learn.microsoft.com): HKLM is unloaded only when the system
# stops, so the key is gone after any restart, whatever the clock says. Its parents are ordinary keys (a volatile
# key may sit under non-volatile ones; the reverse is refused, ERROR_CHILD_MUST_BE_VOLATILE). In the 64-bit view,
# whatever the bitness of this powershell.exe. HKLM\SOFTWARE is writable by administrators only.
$RestartOwedParent = 'SOFTWARE\UsercubeIac\HostingBundle'
$RestartOwedName = 'RestartOwed'

function Open-MachineKey {
    return [Microsoft.Win32.RegistryKey]::OpenBaseKey([Microsoft.Win32.RegistryHive]::LocalMachine, [Microsoft.Win32.RegistryView]::Registry64)
}

function Write-RestartOwed([int] $Code) {
    # What set records when the installer itself exits 3010 (ERROR_SUCCESS_REBOOT_REQUIRED) or 1641. The
    # machine's own pending-restart markers cannot tell whose restart they wait for.
    $base = Open-MachineKey
    try {
        $parent = $base.CreateSubKey($RestartOwedParent, [Microsoft.Win32.RegistryKeyPermissionCheck]::ReadWriteSubTree)
        try {
            # CreateSubKey opens a key that exists as it is and ignores Volatile (RegCreateKeyExW: "if the key
            # already exists, this parameter is ignored"): a stable RestartOwed would be owed forever. It goes first
            # (DeleteSubKeyTree, no error when absent), so what is created is always volatile.
            $parent.DeleteSubKeyTree($RestartOwedName, $false)
            $owed = $parent.CreateSubKey($RestartOwedName, [Microsoft.Win32.RegistryKeyPermissionCheck]::ReadWriteSubTree, [Microsoft.Win32.RegistryOptions]::Volatile)
            try { $owed.SetValue('exit_code', $Code, [Microsoft.Win32.RegistryValueKind]::DWord) } finally { $owed.Dispose() }
        } finally {
            $parent.Dispose()
        }
    } finally {
        $base.Dispose()
    }
}

function Test-RestartOwed {
    $base = Open-MachineKey
    try {
        $owed = $base.OpenSubKey("$RestartOwedParent\$RestartOwedName")
        if ($null -eq $owed) { return $false }
        $owed.Dispose()
        return $true
    } finally {
        $base.Dispose()
    }
}

function Get-LegacyRestartRecordPath {
    return [System.IO.Path]::Combine((Get-StagingRoot), 'restart-required.json')
}

function Test-LegacyRestartRecord([string] $BootTime) {
    # The record earlier versions wrote instead of the key: read, never trusted beyond its own rule (made in this
    # boot), and only in safe staging folders. Without it, a host that got 3010 from an earlier version and has
    # not restarted since would report no restart owed, and the restart step would be skipped. set turns it into
    # the key and deletes it (Move-LegacyRestartRecord), so it is read until the next set at most.
    $path = Get-LegacyRestartRecordPath
    if (-not (Test-StagingTrusted (Get-StagingRoot)) -or -not [System.IO.File]::Exists($path)) { return $false }
    # A truncated or corrupt record (DeserializeObject throws ArgumentException, "Invalid JSON primitive"), or
    # one that is not an object with boot_time, is no record: otherwise get would fail on every refresh until
    # someone deleted it by hand. So is one that cannot be read: ReadAllText throws IOException on a sharing
    # violation (an antivirus or backup holding it) and UnauthorizedAccessException on an entry that denies this
    # account reading (learn.microsoft.com File.ReadAllText, Exceptions). set deletes it either way.
    $record = $null
    try {
        $record = $JsonSerializer.DeserializeObject([System.IO.File]::ReadAllText($path))
    } catch [System.ArgumentException], [System.InvalidOperationException], [System.IO.IOException], [System.UnauthorizedAccessException] {
        return $false
    }
    if ($record -isnot [System.Collections.Generic.Dictionary[string, object]] -or -not $record.ContainsKey('boot_time')) { return $false }
    return ([string]$record['boot_time'] -eq $BootTime)
}

function Move-LegacyRestartRecord {
    # set, in safe folders (Initialize-StagingFolder ran): the restart an earlier version recorded, still owed in
    # this boot, becomes the key; the file goes either way.
    $path = Get-LegacyRestartRecordPath
    if (-not [System.IO.File]::Exists($path)) { return }
    if (Test-LegacyRestartRecord (Get-BootTime)) { Write-RestartOwed 3010 }
    [System.IO.File]::Delete($path)
}

function Test-InstallerRestartPending([string] $BootTime) {
    # The restart this resource's installer asked for, not done yet.
    return ((Test-RestartOwed) -or (Test-LegacyRestartRecord $BootTime))
}

function Test-MachineRestartPending {
    # Information only: whoever asked for it. Windows Installer replaces a file in use at the next start:
    # MoveFileEx(MOVEFILE_DELAY_UNTIL_REBOOT) records it in PendingFileRenameOperations (learn.microsoft.com,
    # MoveFileExW), for any software's installer; component servicing sets RebootPending.
    $session = Get-ItemProperty -LiteralPath 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager' -Name 'PendingFileRenameOperations' -ErrorAction SilentlyContinue
    $servicing = Test-Path -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending'
    return (($null -ne $session) -or $servicing)
}

function Get-BootTime {
    # When the host last started (Win32_OperatingSystem.LastBootUpTime), in UTC: a restart changes it.
    $os = Get-CimInstance -ClassName Win32_OperatingSystem
    return ([datetime]$os.LastBootUpTime).ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", [System.Globalization.CultureInfo]::InvariantCulture)
}

function Set-RepairAction($State, [version] $Installed, [version] $Requested, [string] $Missing) {
    # What the bundle of the installed version lacks comes back with its /repair; only that bundle's own installer
    # can repair it, so with a newer one installed the operation is blocked, naming the installer to give.
    if ($Installed -eq $Requested) {
        $State.action = 'repair'
        $State.reason = $Missing
    } else {
        $State.action = 'blocked'
        $State.reason = "$Missing, and the installed ASP.NET Core runtime $Installed is newer than this installer's $Requested`: only the installer of $Installed can repair it (/repair); give that one, or a newer one, as the hosting bundle"
    }
}

function Get-BundleState($Spec) {
    # What the host has, and what set would do about it: none, install, repair, or blocked (with the reason).
    $requested = [version][string]$Spec.version
    $family = "$($requested.Major).$($requested.Minor)"
    $installed = $null
    $all = New-Object 'System.Collections.Generic.List[string]'
    $runtimes = Get-InstalledRuntimes
    foreach ($runtime in $runtimes) {
        $all.Add($runtime.ToString())
        # An app built for 8.0 rolls forward to the newest 8.0.x, never to 9.0 (the runtime's default roll-forward
        # policy, learn.microsoft.com "Select the .NET version to use"): only the same major.minor counts.
        if ($runtime.Major -eq $requested.Major -and $runtime.Minor -eq $requested.Minor) {
            if ($null -eq $installed -or $runtime -gt $installed) { $installed = $runtime }
        }
    }
    $netcore = Get-NewestOfFamily (Get-InstalledNetCoreRuntimes) $requested
    $iis = Test-IisInstalled
    $module = $null
    if ($iis) { $module = Test-AspNetCoreModule }
    $state = [ordered]@{
        ensure = 'present'
        version = [string]$Spec.version
        installed_version = $null
        installed_versions = @($all)
        netcore_installed_version = $null
        iis_installed = $iis
        aspnetcore_module_present = $module
        restart_pending = $false
        machine_restart_pending = (Test-MachineRestartPending)
        boot_time = (Get-BootTime)
        action = 'none'
        reason = ''
        held_bytes = 0
        held_sha256 = $null
        staged = $false
    }
    $state.restart_pending = Test-InstallerRestartPending $state.boot_time
    if ($null -ne $installed) { $state.installed_version = $installed.ToString() }
    if ($null -ne $netcore) { $state.netcore_installed_version = $netcore.ToString() }
    if ($null -eq $installed -or $installed -lt $requested) {
        $state.action = 'install'
        $have = 'none'
        if ($null -ne $installed) { $have = $installed.ToString() }
        $state.reason = "the host has ASP.NET Core runtime $family at $have, below $($Spec.version)"
    } elseif ($null -eq $netcore -or $netcore -lt $requested) {
        # ASP.NET Core runs on the .NET runtime: both must be there. Burn plans nothing for an /install of a bundle
        # already registered, so the runtime removed on its own comes back with a /repair of the same bundle.
        $have = 'none'
        if ($null -ne $netcore) { $have = $netcore.ToString() }
        Set-RepairAction $state $installed $requested "the host has the .NET runtime (Microsoft.NETCore.App) $family at $have, below $($Spec.version)"
    } elseif ($iis -and -not $module) {
        Set-RepairAction $state $installed $requested 'AspNetCoreModuleV2 is missing from IIS (the hosting bundle was installed before IIS)'
    }
    if ($state.action -eq 'install' -or $state.action -eq 'repair') {
        # Only when something is to run: hashing a 100 MB installer takes a while.
        $root = Get-StagingRoot
        $partial = Get-PartialPath $root ([string]$Spec.sha256)
        $final = [System.IO.Path]::Combine((Get-InstallerFolder $root ([string]$Spec.sha256)), [string]$Spec.installer_name)
        # In folders that are not (yet) safe nothing counts as held: the upload starts again, into folders chunk
        # makes safe first.
        $trusted = Test-StagingTrusted (Get-InstallerFolder $root ([string]$Spec.sha256))
        if ($trusted -and [System.IO.File]::Exists($final) -and (New-Object System.IO.FileInfo $final).Length -eq [long]$Spec.size) {
            $state.staged = $true
        } elseif ($trusted -and [System.IO.File]::Exists($partial)) {
            $state.held_bytes = (New-Object System.IO.FileInfo $partial).Length
            $state.held_sha256 = Get-FileSha256 $partial
        }
    }
    return $state
}

function Publish-StagedInstaller($Spec, [string] $Root) {
    # The complete upload, moved to its own folder under its own name; the path to run (Open-VerifiedInstaller
    # checks its SHA-256).
    $folder = Get-InstallerFolder $Root ([string]$Spec.sha256)
    $final = [System.IO.Path]::Combine($folder, [string]$Spec.installer_name)
    $partial = Get-PartialPath $Root ([string]$Spec.sha256)
    if ([System.IO.File]::Exists($partial)) {
        $held = (New-Object System.IO.FileInfo $partial).Length
        if ($held -ne [long]$Spec.size) {
            Stop-Operation -Id 'InstallerNotUploaded' -Property 'size' -Message "the host holds $held of the installer's $($Spec.size) bytes; run up again (the upload continues from there)"
        }
        [void][System.IO.Directory]::CreateDirectory($folder)
        if ([System.IO.File]::Exists($final)) { [System.IO.File]::Delete($final) }
        [System.IO.File]::Move($partial, $final)
    }
    if (-not [System.IO.File]::Exists($final)) {
        Stop-Operation -Id 'InstallerNotUploaded' -Property 'sha256' -Message "the installer $($Spec.installer_name) is not on the host; run up again to upload it"
    }
    # Installers of other versions staged before are of no use any more.
    foreach ($other in [System.IO.Directory]::GetDirectories($Root)) {
        if (-not $other.Equals($folder, [System.StringComparison]::OrdinalIgnoreCase)) { [System.IO.Directory]::Delete($other, $true) }
    }
    return $final
}

function Open-VerifiedInstaller([string] $Path, [string] $Sha256) {
    # The installer opened for reading and shared for reading only: while this handle is open, an open that asks
    # to write, delete or rename the file fails with a sharing violation (learn.microsoft.com CreateFileW,
    # dwShareMode; FileShare.Read), so what runs is what was hashed here. The caller keeps it open until the
    # process has started: CreateProcess opens the image to read and execute, which this share mode allows.
    $hold = [System.IO.FileStream]::new($Path, [System.IO.FileMode]::Open, [System.IO.FileAccess]::Read, [System.IO.FileShare]::Read)
    $verified = $false
    try {
        $actual = Get-StreamSha256 $hold
        $verified = ($actual -eq $Sha256)
    } finally {
        # Handed to the caller only when verified; closed on any other way out (a failed read included).
        if (-not $verified) { $hold.Dispose() }
    }
    if (-not $verified) {
        [System.IO.File]::Delete($Path)
        Stop-Operation -Id 'InstallerHashMismatch' -Property 'sha256' -Message "the uploaded installer has SHA-256 $actual, not $Sha256; it was deleted: run up again to send it anew"
    }
    return $hold
}

function Invoke-Installer([string] $Installer, [string] $Sha256, [string] $Verb, [string] $Log, [int] $TimeoutSeconds, [ref] $TreeListed) {
    # The bundle's own switches (its help text, dotnet/aspnetcore bundle.wxl: /install | /repair, /quiet,
    # /norestart "suppress any attempts to restart", /log). Process.Start rather than Start-Process: the exit code
    # of the installer itself, and a bound on the wait. $null when it did not finish in time; $TreeListed then says
    # whether the processes it started were all found (Stop-InstallerTree).
    # Its standard handles are pipes of its own: with UseShellExecute = $false and the three streams redirected,
    # Process.Start gives it new pipes in STARTUPINFO (learn.microsoft.com, ProcessStartInfo.RedirectStandard*),
    # so it never writes into the loop's framed responses; stdin is closed at once, and what it writes is read to
    # the end by .NET tasks (ReadToEndAsync: no PowerShell script block on a thread-pool thread, and a full pipe
    # never blocks it). The loop's own handles are not inheritable (loop.ps1), so it holds none of them either.
    $info = New-Object System.Diagnostics.ProcessStartInfo
    $info.FileName = $Installer
    $info.Arguments = "$Verb /quiet /norestart /log `"$Log`""
    $info.UseShellExecute = $false
    $info.CreateNoWindow = $true
    $info.RedirectStandardInput = $true
    $info.RedirectStandardOutput = $true
    $info.RedirectStandardError = $true
    $hold = Open-VerifiedInstaller $Installer $Sha256
    $process = $null
    try {
        $process = [System.Diagnostics.Process]::Start($info)
    } finally {
        $hold.Dispose()
    }
    $drains = @()
    try {
        $process.StandardInput.Close()
        $drains = @($process.StandardOutput.ReadToEndAsync(), $process.StandardError.ReadToEndAsync())
        if (-not $process.WaitForExit($TimeoutSeconds * 1000)) {
            $TreeListed.Value = Stop-InstallerTree $process
            return $null
        }
        return $process.ExitCode
    } finally {
        # Process.Dispose leaves the redirected readers open (.NET Framework's Process.Close only drops its
        # references to them, dotnet/referencesource System/services/monitoring/system/diagnosticts/Process.cs):
        # their pipes are closed here, once the reads have seen the end (the process and its children are gone).
        foreach ($drain in $drains) { try { [void]$drain.Wait(2000) } catch { $null = $_ } }
        $process.StandardOutput.Dispose()
        $process.StandardError.Dispose()
        $process.Dispose()
    }
}

function Get-StartUtc($Entry) {
    # CreationDate (CIM) and Process.StartTime are local times (Kind Local): compared as they are, the hour a DST
    # change repeats gives two instants one local time. In UTC each has its own (.NET keeps which of the two a local
    # time is, from the conversion that made it: TimeZoneInfo.ConvertTime and DateTime.ToLocalTime set its
    # ambiguous-DST bit, and ToUniversalTime reads it, dotnet/referencesource timezoneinfo.cs and datetime.cs).
    if ($null -eq $Entry.CreationDate) { return $null }
    return $Entry.CreationDate.ToUniversalTime()
}

function Get-ProcessKey($Entry) {
    # A process is its id and its start: an id is reused once its process has gone.
    return "$($Entry.ProcessId)|$((Get-StartUtc $Entry).Ticks)"
}

function Get-NewDescendants($Known, $Seen) {
    # Win32_Process.ParentProcessId: the processes started by any process of the tree, ended ones included (an
    # orphan keeps the id of its parent), and theirs, not in $Seen yet; parents before children. A parent id can be
    # reused by a later process: only processes created after their parent count.
    # A listing WMI fails (CimException: the provider busy or over its quota, 0x80041006, winmgmt restarting, or
    # hung past -OperationTimeoutSec; terminating under EAP=Stop, so a generic catch) is $null, not an empty list
    # (which says nothing new was started): the installer's own Kill still runs (Stop-InstallerTree), and the
    # next round lists again. Without -OperationTimeoutSec a listing waits as long as the CIM session's own
    # operation time-out (learn.microsoft.com, Get-CimInstance), perhaps for ever on a hung winmgmt, and round 0's
    # Kill of the installer waits with it. 5 s: listing the processes takes well under a second, and the whole
    # walk must fit in the 30 s install_timeout_s leaves below command_timeout_s (Stop-InstallerTree).
    $all = @()
    try {
        $all = @(Get-CimInstance -ClassName Win32_Process -Property @('ProcessId', 'ParentProcessId', 'CreationDate') -OperationTimeoutSec 5)
    } catch {
        return $null
    }
    # The id of a member that has ended may belong to a later process now (a start other than the member's, by
    # a millisecond or more, as Stop-ListedProcess compares them): only what was created before it is the member's.
    $live = @{}
    foreach ($entry in $all) { $live[[int]$entry.ProcessId] = Get-StartUtc $entry }
    $found = New-Object 'System.Collections.Generic.List[object]'
    $queue = New-Object 'System.Collections.Generic.Queue[object]'
    foreach ($member in $Known) { $queue.Enqueue($member) }
    while ($queue.Count -gt 0) {
        $parent = $queue.Dequeue()
        $parentId = [int]$parent.ProcessId
        $parentStart = Get-StartUtc $parent
        $reusedAt = $null
        if ($live.ContainsKey($parentId) -and $null -ne $live[$parentId] -and [math]::Abs(($live[$parentId] - $parentStart).Ticks) -ge [System.TimeSpan]::TicksPerMillisecond) {
            $reusedAt = $live[$parentId]
        }
        foreach ($child in @($all | Where-Object { [int]$_.ParentProcessId -eq $parentId -and $null -ne $_.CreationDate -and $_.CreationDate.ToUniversalTime() -ge $parentStart -and ($null -eq $reusedAt -or $_.CreationDate.ToUniversalTime() -lt $reusedAt) })) {
            if ($Seen.Add((Get-ProcessKey $child))) { $found.Add($child); $queue.Enqueue($child) }
        }
    }
    return , $found.ToArray()
}

function Stop-ListedProcess($Entry, $Held) {
    # Only the process listed: between the listing and now its id may have been given to another process, so its
    # start (Process.StartTime, 100 ns) must be the listed CreationDate (CIM datetime, to the microsecond).
    # A process that exits (or may not be ended) in between is no failure: GetProcessById throws ArgumentException
    # (gone), Handle, StartTime and Kill InvalidOperationException (it has exited), ArgumentException (its id is
    # gone, GetProcessHandle) or Win32Exception (access denied: TerminateProcess on a process already terminating,
    # or one this token may not open); the rest of the tree is still ended and the result stays InstallerTimedOut.
    # Its Process object goes into $Held with its handle open (Process.Handle keeps the handle it opens, and
    # StartTime and Kill then use that one: dotnet/referencesource Process.cs, OpenProcessHandle and
    # GetProcessHandle), disposed by Stop-InstallerTree when the walk is over. An id stays in use "until all handles
    # to the process are closed" (learn.microsoft.com, PROCESS_INFORMATION): no later process takes a held
    # member's id between its start check and its Kill, nor before the walk ends, so what is listed under that id
    # meanwhile is the member's own child. Refused all access (Win32Exception), StartTime and Kill open their own
    # handles, as without it.
    $child = $null
    try { $child = [System.Diagnostics.Process]::GetProcessById([int]$Entry.ProcessId) } catch [System.ArgumentException] { return }  # gone
    $Held.Add($child)
    try {
        try { $null = $child.Handle } catch [System.ComponentModel.Win32Exception] { $null = $_ }
        $started = $child.StartTime
        if ([math]::Abs(($started.ToUniversalTime() - (Get-StartUtc $Entry)).Ticks) -lt [System.TimeSpan]::TicksPerMillisecond) { $child.Kill() }
    } catch [System.InvalidOperationException], [System.ArgumentException], [System.ComponentModel.Win32Exception] { $null = $_ }
}

function Stop-InstallerTree([System.Diagnostics.Process] $Process) {
    # The installer that did not finish in time is ended, with what it started (Process.Kill ends one process
    # only on .NET Framework: no entireProcessTree), so that none of it goes on behind the next run. Leaves first,
    # the installer last, and the tree listed again until nothing new appears: a process started meanwhile (Burn's
    # clean-room copy starts the elevated engine) is found under its parent, alive or ended. The MSI transaction
    # itself runs in the Windows Installer service (msiexec /V, not a child of the bundle): the service rolls it
    # back, holding the _MSIExecute mutex until done, which the next run waits for (Assert-NoInstallationRunning).
    # The installer's own start, to the microsecond as CIM gives CreationDate; its handle is held since Start, so
    # StartTime reads even once it has exited. Returns whether the walk ended on a listing that found nothing new:
    # not after listings that failed up to the last round (or a tree still growing then), when part of it may run on.
    # It must end within the 30 s that install_timeout_s stays below the connection's command_timeout_s (the
    # HostingBundle model checks it), or the transport gives up first: with a listing waiting 5 s at most and no
    # round begun after 10 s, a hung WMI costs 15 s, then the installer's WaitForExit(5000) and the drains' 2 x 2 s.
    $start = $Process.StartTime
    $root = [pscustomobject]@{ ProcessId = $Process.Id; CreationDate = $start.AddTicks(-($start.Ticks % 10)) }
    $known = New-Object 'System.Collections.Generic.List[object]'
    $known.Add($root)
    $seen = New-Object 'System.Collections.Generic.HashSet[string]'
    [void]$seen.Add((Get-ProcessKey $root))
    $held = New-Object 'System.Collections.Generic.List[System.Diagnostics.Process]'
    $complete = $false
    $walk = [System.Diagnostics.Stopwatch]::StartNew()
    try {
        for ($round = 0; $round -lt 10 -and ($round -eq 0 -or $walk.Elapsed.TotalSeconds -lt 10); $round++) {
            $new = @()
            $listing = $null
            try {
                # $null when the listing failed, an array (perhaps empty: `return , ...`, not unrolled) otherwise.
                $listing = Get-NewDescendants $known $seen
                if ($null -ne $listing) { $new = $listing }
                for ($i = $new.Count - 1; $i -ge 0; $i--) { Stop-ListedProcess $new[$i] $held }
            } finally {
                # The installer itself is ended whatever the first listing and its Kills did.
                if ($round -eq 0) {
                    try { $Process.Kill() } catch [System.InvalidOperationException], [System.ArgumentException], [System.ComponentModel.Win32Exception] { $null = $_ }
                }
            }
            # A failed listing proves nothing: the next round lists again (up to the ten rounds).
            if ($null -eq $listing) { continue }
            # Once more after the installer's own Kill: what it started just before is found then.
            if ($new.Count -eq 0 -and $round -gt 0) { $complete = $true; break }
            $known.AddRange($new)
        }
    } finally {
        # The members' handles, held while the tree was walked (Stop-ListedProcess): their ids are free again.
        foreach ($heldProcess in $held) { $heldProcess.Dispose() }
    }
    [void]$Process.WaitForExit(5000)
    return $complete
}

function Assert-NoInstallationRunning($Spec) {
    # Windows Installer owns the mutex Global\_MSIExecute while an installation runs (learn.microsoft.com,
    # "_MSIExecute Mutex"): one a previous run ended at its time-out and the service still rolls back, or anyone
    # else's. Nothing is started beside it. The mutex object may outlive the installation while the service
    # lingers, so what counts is whether it is owned: WaitOne(0) takes it at once when nobody owns it, and it is
    # let go at once (as PSAppDeployToolkit's Test-IsMutexAvailable tests it; an abandoned one is not owned).
    # TryOpenExisting returns false only when there is no such mutex; one whose DACL refuses this account
    # Synchronize|Modify throws UnauthorizedAccessException (dotnet/referencesource Mutex.OpenExistingWorker:
    # ERROR_ACCESS_DENIED goes to __Error.WinIOError). It exists then and cannot be tested: nothing is started, as
    # PSAppDeployToolkit's Test-IsMutexAvailable counts it busy, but rather than an UnexpectedError on every run it
    # has an id, category and message of its own (InstallerMutexDenied, PermissionDenied): waiting does not help,
    # the same refusal comes back until the account or the DACL changes.
    $mutex = $null
    $exists = $false
    $owned = $false
    $denied = $false
    try {
        $exists = [System.Threading.Mutex]::TryOpenExisting('Global\_MSIExecute', [ref]$mutex)
    } catch [System.UnauthorizedAccessException] {
        $denied = $true
    }
    if ($exists) {
        try {
            try { $owned = -not $mutex.WaitOne(0) } catch [System.Threading.AbandonedMutexException] { $owned = $false }
            if (-not $owned) { $mutex.ReleaseMutex() }
        } finally {
            $mutex.Dispose()
        }
    }
    if ($denied) {
        Stop-Operation -Id 'InstallerMutexDenied' -Category 'PermissionDenied' -Message "Windows Installer's mutex Global\_MSIExecute exists but this account may not open it (access denied), so whether an installation is running cannot be told; connect as an administrator of the host (elevated), or check the mutex's DACL (a security product may have changed it), then run up again"
    }
    if ($owned) {
        Stop-Operation -Id 'InstallerBusy' -Category 'ResourceBusy' -Property 'install_timeout_s' -Message "another installation is running on the host (Windows Installer's mutex Global\_MSIExecute is owned), perhaps the rollback of an installer a previous run ended at its time-out (install_timeout_s); run up again when it has finished, or raise install_timeout_s if the installer needs longer"
    }
}
