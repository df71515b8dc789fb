# Helpers of the RuntimeArchive scripts that change Runtime (set, remove); included after _staging.ps1.

# ServiceController is in System.ServiceProcess.dll, which a runspace made with
# InitialSessionState.CreateDefault2 (the bootstrap's pool) does not load.
Add-Type -AssemblyName System.ServiceProcess

# The shortest wait Stop-Agent gives a service's own stop (review-archive7 Z2): with less of the budget left past
# what the waits around it may take, the service is not stopped at all.
$MinimumStopWaitSeconds = 30

function New-PathSet {
    # NTFS names ignore case.
    return ,(New-Object 'System.Collections.Generic.HashSet[string]' ([System.StringComparer]::OrdinalIgnoreCase))
}

function Get-ArchiveFileList($Archive, [string] $RuntimePath) {
    # ($Archive: a ZipArchive; untyped, since remove.ps1 includes this file without loading System.IO.Compression.)
    # The relative paths of the archive's files, checked before anything is extracted: a name that would
    # leave the folder, that Windows refuses or that .NET Framework (no long paths) cannot create stops the
    # operation here, with the agent untouched.
    $invalid = [System.IO.Path]::GetInvalidFileNameChars()
    $files = New-Object 'System.Collections.Generic.List[string]'
    $seen = New-PathSet
    foreach ($entry in $Archive.Entries) {
        $name = $entry.FullName.Replace('/', '\')
        $isFolder = $name.EndsWith('\')
        $relative = $name.TrimEnd('\')
        $parts = $relative.Split('\')
        # (Counted: a pipeline that yields only the empty segment would read as false.) A name ending in a dot or
        # a space is refused too: Windows drops those when it creates the file (learn.microsoft.com "Naming Files,
        # Paths, and Namespaces"), so 'a.' would land on 'a'. So is a reserved device name, also with an extension
        # ('nul.txt' is the NUL device on Windows Server 2019/2022; same page): the file would open the device.
        # COM and LPT take the superscript digits too ("Windows recognizes the 8-bit ISO/IEC 8859-1 superscript
        # digits 1, 2 and 3 as digits", same page: U+00B9, U+00B2, U+00B3, written as regex escapes so that this
        # file stays ASCII for 5.1), and spaces before the extension are dropped ('NUL .txt' too; refused, as safe).
        $bad = ($relative.Length -eq 0) -or @($parts | Where-Object { $_ -eq '' -or $_ -eq '.' -or $_ -eq '..' -or $_.IndexOfAny($invalid) -ge 0 -or $_.TrimEnd('. ') -ne $_ -or $_ -match '^(CON|PRN|AUX|NUL|COM[0-9\u00B9\u00B2\u00B3]|LPT[0-9\u00B9\u00B2\u00B3]) *(\.|$)' }).Count -gt 0
        if ($bad) {
            Stop-Operation -Id 'ArchiveEntryRefused' -Property 'sha256' -Message "the archive's entry '$($entry.FullName)' is not a relative path inside the folder; this archive cannot be extracted safely"
        }
        if (@($NewFolderName, $OldFolderName) -contains $parts[0]) {
            Stop-Operation -Id 'ArchiveEntryRefused' -Property 'sha256' -Message "the archive's entry '$($entry.FullName)' uses the name $($parts[0]), which the extraction needs for itself"
        }
        $longest = [System.IO.Path]::Combine($RuntimePath, $NewFolderName, $relative)
        if ($longest.Length -gt 259) {
            Stop-Operation -Id 'ArchivePathTooLong' -Property 'runtime_path' -Message "'$longest' would be $($longest.Length) characters; Windows PowerShell 5.1 (.NET Framework) handles at most 259: choose a shorter working directory"
        }
        # .NET Framework's own limit for a folder: fewer than 248 characters (PathTooLongException otherwise).
        $parent = [System.IO.Path]::GetDirectoryName($longest)
        if (-not $isFolder -and $parent.Length -gt 247) {
            Stop-Operation -Id 'ArchivePathTooLong' -Property 'runtime_path' -Message "the folder '$parent' would be $($parent.Length) characters; Windows PowerShell 5.1 (.NET Framework) handles folders of at most 247: choose a shorter working directory"
        }
        if ($isFolder -and $longest.Length -gt 247) {
            Stop-Operation -Id 'ArchivePathTooLong' -Property 'runtime_path' -Message "the folder '$longest' would be $($longest.Length) characters; Windows PowerShell 5.1 (.NET Framework) handles folders of at most 247: choose a shorter working directory"
        }
        if ($isFolder) { continue }
        if (-not $seen.Add($relative)) {
            Stop-Operation -Id 'ArchiveEntryRefused' -Property 'sha256' -Message "the archive holds '$relative' twice (names ignore case on Windows)"
        }
        $files.Add($relative)
    }
    return ,$files
}

function Move-FileWithRetry([string] $Source, [string] $Target) {
    # Right after its pool or service stopped, the agent's process may still be exiting and hold its files
    # for a moment (sharing violation 32, access denied 5): retried for up to about 3 s.
    for ($attempt = 1; ; $attempt++) {
        try {
            [System.IO.File]::Move($Source, $Target)
            return
        } catch {
            $reason = $_.Exception
            while ($null -ne $reason.InnerException) { $reason = $reason.InnerException }
            $code = $reason.HResult -band 0xFFFF
            if ($attempt -ge 8 -or @(5, 32) -notcontains $code) { throw }
            Start-Sleep -Milliseconds (100 * $attempt)
        }
    }
}

function New-ParentFolder([string] $Path) {
    [void][System.IO.Directory]::CreateDirectory([System.IO.Path]::GetDirectoryName($Path))
}

function Remove-Tree([string] $Path) {
    # Not Remove-Item -Recurse, which in 5.1 follows junctions (PowerShell/PowerShell#621): a reparse
    # point is removed as a link (Directory.Delete does not recurse through it), never entered.
    if (-not (Test-Path -LiteralPath $Path)) { return }
    $folder = New-Object System.IO.DirectoryInfo $Path
    if (($folder.Attributes -band [System.IO.FileAttributes]::ReparsePoint) -ne 0) {
        [System.IO.Directory]::Delete($Path, $false)
        return
    }
    foreach ($entry in $folder.GetFileSystemInfos()) {
        if ($entry -is [System.IO.DirectoryInfo]) {
            Remove-Tree $entry.FullName
        } else {
            $entry.Attributes = [System.IO.FileAttributes]::Normal
            $entry.Delete()
        }
    }
    $folder.Delete($false)
}

function Remove-Files([string[]] $Paths) {
    # Deletes each file. A running program's images (its .exe and the DLLs it loaded) are mapped, and a
    # mapped image cannot be deleted even though no handle is open (learn.microsoft.com "Executable Images",
    # file system drivers: STATUS_CANNOT_DELETE, which DeleteFile reports as ERROR_ACCESS_DENIED: .NET's
    # UnauthorizedAccessException); a pool's worker keeps them mapped while it exits. So the files left are
    # tried again in rounds for about 6 s. Returns those still there: path and the last error's message.
    $left = @($Paths)
    $reasons = @{}
    for ($round = 1; $left.Count -gt 0; $round++) {
        $still = @()
        foreach ($path in $left) {
            try {
                if ([System.IO.File]::Exists($path)) { [System.IO.File]::SetAttributes($path, [System.IO.FileAttributes]::Normal) }
                [System.IO.File]::Delete($path)
            } catch {
                $reason = $_.Exception
                while ($null -ne $reason.InnerException) { $reason = $reason.InnerException }
                $reasons[$path] = $reason.Message
                $still += $path
            }
        }
        $left = $still
        if ($left.Count -eq 0 -or $round -ge 6) { break }
        Start-Sleep -Milliseconds (300 * $round)
    }
    return ,@($left | ForEach-Object { [ordered]@{ path = $_; reason = $reasons[$_] } })
}

function Remove-EmptyParents([string] $RuntimePath, [string[]] $Relative) {
    # The folders the removed files leave empty, deepest first; never Runtime itself.
    $folders = New-PathSet
    foreach ($file in $Relative) {
        for ($parent = [System.IO.Path]::GetDirectoryName($file); $parent; $parent = [System.IO.Path]::GetDirectoryName($parent)) {
            [void]$folders.Add($parent)
        }
    }
    foreach ($folder in @($folders | Sort-Object -Property Length -Descending)) {
        $full = [System.IO.Path]::Combine($RuntimePath, $folder)
        if ([System.IO.Directory]::Exists($full) -and @([System.IO.Directory]::GetFileSystemEntries($full)).Count -eq 0) {
            [System.IO.Directory]::Delete($full, $false)
        }
    }
}

function Remove-TreeBestEffort([string] $Path) {
    # For .iac-old once the new version is committed: a pool's worker keeps the replaced images mapped while
    # it exits (up to the pool's shutdownTimeLimit, 90 s by default), and a mapped image can be renamed but
    # not deleted. Retried for about 5 s; what is left is removed by the next run. Returns whether it is gone.
    for ($attempt = 1; ; $attempt++) {
        try {
            Remove-Tree $Path
            return $true
        } catch {
            if ($attempt -ge 6) { return $false }
            Start-Sleep -Milliseconds (300 * $attempt)
        }
    }
}

function Stop-Agent($Spec, [string] $Folder, [bool] $StartsAgain) {
    # What runs the agent, stopped when it was running (a running agent holds its DLLs: they can be neither
    # overwritten nor deleted). What is about to be stopped is written to agent-stopped.json in the staging
    # folder first, so a run that breaks before Start-Agent leaves a record: get reports it and the next set
    # starts it again. A pool or service that does not stop throws AgentStopFailed (New-OperationError), so
    # that the caller starts it again before reporting it. Returns what it stopped, for Start-Agent.
    # $StartsAgain: the caller runs Start-Agent after it (set); remove never does, so its budget keeps nothing for
    # starts (review-archive6 V4).
    $stopped = @()
    # auto_start: the pool's AutoStart, start_type: the service's start type, when it was stopped (Start-Agent
    # tells one stopped on purpose since).
    $record = [ordered]@{ pool = $null; auto_start = $null; service = $null; start_type = $null; dependents = @() }
    if ($Spec.app_pool) {
        Import-IisAdministration
        $manager = New-Object Microsoft.Web.Administration.ServerManager
        try {
            $pool = $manager.ApplicationPools[[string]$Spec.app_pool]
            $state = $null
            if ($null -ne $pool) { $state = Get-AgentPoolState $pool }
            $passing = @('Starting', 'Stopping', 'Unknown')
            if ($passing -contains $state) {
                # Waited for, in one loop within one deadline, until it is Started or Stopped, whatever the order (an
                # Unknown that turns out Starting while WAS comes up after a reboot, a Stopping pool someone starts):
                # a state left for another passing one is waited for too, never taken for Stopped (review-archive4 R2).
                # Starting: its worker may already run from the files; Started, it is stopped and recorded below.
                # Stopping: someone else's stop, or an earlier one that gave up at its wait; its worker drains its
                # requests for up to the pool's shutdownTimeLimit and maps the agent's images meanwhile (WAS shows
                # the pool Stopping until then: learn.microsoft.com Microsoft.Web.Administration ObjectState,
                # applicationPools <processModel> shutdownTimeLimit). Unknown: State could not be read (ObjectState
                # Unknown, or WAS did not answer; Get-AgentPoolState takes it as Stopped once WAS is Stopped).
                # Stopped is not recorded (this run did not stop it; a record of this project's stays) but its
                # worker's exit is waited for, as for a pool this run stops.
                $wait = Get-WaitBudget (Get-PoolShutdownWait $pool)
                $state = Wait-PoolStateLeft $pool $passing $wait
                if ($passing -contains $state) {
                    throw (New-AgentStopError 'app_pool' "application pool '$($Spec.app_pool)' is still in state $state after $wait s; see the System event log (WAS), then run again")
                }
                if ($state -eq 'Stopped') { Assert-PoolWorkerExited ([string]$Spec.app_pool) $false }
            }
            if ($state -eq 'Started') {
                $record.pool = [string]$Spec.app_pool
                $record.auto_start = [bool]$pool.AutoStart
                Write-AgentStopped $Folder $record
                [void]$pool.Stop()
                $stopped += 'pool'
                $wait = Get-WaitBudget (Get-PoolShutdownWait $pool)
                $state = Wait-PoolState $pool 'Stopped' $wait
                if ($state -ne 'Stopped') {
                    throw (New-AgentStopError 'app_pool' "application pool '$($Spec.app_pool)' did not stop within $wait s (state $state).")
                }
            }
        } finally {
            $manager.Dispose()
        }
    }
    if ($Spec.service_name) {
        $name = [string]$Spec.service_name
        $all = [System.ServiceProcess.ServiceController]::GetServices()
        # DependentServices returns the controller's cached array, and Stop() walks that same array again: on
        # each element it calls Refresh() and reads Status, which on a disposed controller throws
        # ObjectDisposedException (GetDataBaseHandleWithConnectAccess). So the dependents are disposed only
        # after Stop, in the finally below (microsoft/referencesource System.ServiceProcess ServiceController.cs:
        # DependentServices, Stop, Dispose -> Close, GetDataBaseHandleWithConnectAccess).
        $dependents = @()
        $pendingStart = @([System.ServiceProcess.ServiceControllerStatus]::StartPending, [System.ServiceProcess.ServiceControllerStatus]::ContinuePending)
        try {
            $service = @($all | Where-Object { $_.ServiceName -eq $name })
            if ($service.Count -eq 1 -and $pendingStart -contains $service[0].Status) {
                # On its way to Running (its process already runs from the files): ControlService refuses a stop in
                # StartPending (ERROR_SERVICE_CANNOT_ACCEPT_CTRL 1061, learn.microsoft.com ControlService), so the
                # start is waited for until it ends either way, then taken as it is: running, it is stopped and
                # recorded; Stopped (the start failed), nothing runs. (Not WaitForStatus(Running), which waits for
                # exactly that status: a failed start would be waited for until its time-out, referencesource.)
                $wait = Get-WaitBudget 60
                if (-not (Wait-ServiceStateLeft $service[0] $pendingStart $wait)) {
                    throw (New-AgentStopError 'service_name' "service '$name' is still starting after $wait s ($($service[0].Status)); see the System event log, then run again")
                }
            }
            if ($service.Count -eq 1 -and $service[0].Status -eq [System.ServiceProcess.ServiceControllerStatus]::StopPending) {
                # Still stopping (an earlier stop that timed out, this project's or someone else's): its process
                # holds the files until it ends. Waited for, not recorded (a record of this project's stays).
                $wait = Get-WaitBudget 120
                try {
                    $service[0].WaitForStatus([System.ServiceProcess.ServiceControllerStatus]::Stopped, [TimeSpan]::FromSeconds($wait))
                } catch {
                    throw (New-AgentStopError 'service_name' "service '$name' is still stopping after $wait s more; see the System event log, end its process, then run again")
                }
            } elseif ($service.Count -eq 1 -and $service[0].Status -ne [System.ServiceProcess.ServiceControllerStatus]::Stopped) {
                # Running, or Paused / PausePending: its process runs from the files either way, and ControlService
                # accepts a stop there (learn.microsoft.com ControlService). ServiceController.Stop stops first every
                # service that depends on this one and is not Stopped (referencesource Stop): those are recorded and
                # started again after it.
                $record.service = $name
                # (ServiceController.StartType: .NET Framework 4.6.1 and later, as on Windows Server 2016.)
                $record.start_type = [string]$service[0].StartType
                $dependents = @($service[0].DependentServices)
                # Stop() stops each dependent that is not Stopped, and ControlService refuses the stop to one in
                # StartPending or StopPending (1061, learn.microsoft.com ControlService; a delayed automatic start after
                # a reboot is one): each is waited for until it is neither (one 60 s deadline for all), before anything
                # is recorded or stopped. Refresh()ed there, so what is recorded is its status after the wait.
                $pendingControl = @([System.ServiceProcess.ServiceControllerStatus]::StartPending, [System.ServiceProcess.ServiceControllerStatus]::StopPending)
                $wait = Get-WaitBudget 60
                $clock = [System.Diagnostics.Stopwatch]::StartNew()
                foreach ($dependent in $dependents) {
                    if (-not (Wait-ServiceStateLeft $dependent $pendingControl ([int][Math]::Max(0, $wait - $clock.Elapsed.TotalSeconds)))) {
                        throw (New-AgentStopError 'service_name' "service '$name' was not stopped: the service '$($dependent.ServiceName)', which depends on it, is still $($dependent.Status) after $wait s; see the System event log, then run again")
                    }
                }
                $record.dependents = @($dependents | Where-Object { $_.Status -ne [System.ServiceProcess.ServiceControllerStatus]::Stopped } | ForEach-Object { $_.ServiceName })
                # Two waits no budget caps, inside the calls: Stop() waits up to 30 s for each running dependent to
                # stop (WaitForStatus(Stopped, 30 s), referencesource ServiceController.cs Stop), and Start-Agent's
                # StartService blocks up to 30 s for each service it starts again (the SCM waits that long for the
                # process to call StartServiceCtrlDispatcher, learn.microsoft.com StartServiceCtrlDispatcherA remarks).
                # So the budget must hold both before anything is recorded or stopped (review-archive5 W1), the
                # service's own start included when it has no running dependent (review-archive6 V3).
                $runningDependents = @($record.dependents).Count
                # set starts again the service and every dependent the record will list: this run's and an earlier
                # record's that is kept (Write-AgentStopped unites them, Start-Agent starts them all: review-archive6
                # V6). remove starts nothing again (V4).
                $startShare = 0
                $parts = @()
                if ($runningDependents -gt 0) { $parts += "ServiceController.Stop() first stops its $runningDependents running dependent services, waiting up to 30 s for each" }
                if ($StartsAgain) {
                    $toStart = @((Get-MergedAgentRecord $Folder $record).dependents).Count
                    $startShare = 30 * ($toStart + 1)
                    if ($toStart -gt 0) { $parts += "starting it and the $toStart services that depend on it again may take up to 30 s each (StartService)" } else { $parts += 'starting it again may take up to 30 s (StartService)' }
                }
                $needed = 30 * $runningDependents + $startShare
                # Its own stop gets at least $MinimumStopWaitSeconds s past that reserve, or nothing is stopped: a wait
                # cut to about 0 s would stop it and its dependents only to report a time-out and start them again
                # (review-archive7 Z2).
                $parts += "its own stop is given at least $MinimumStopWaitSeconds s"
                $left = Get-WaitBudget ($needed + $MinimumStopWaitSeconds)
                if ($left -lt $needed + $MinimumStopWaitSeconds) {
                    # Refused before any wait began: no note that a wait was cut short (review-archive6 V5).
                    $short = 'none is left'
                    if ($left -gt 0) { $short = "only $left s are left" }
                    throw (New-AgentStopError 'service_name' "service '$name' was not stopped, nor anything else: $($parts -join '; '): $($needed + $MinimumStopWaitSeconds) s of this run's wait budget in all, but $short of this run's wait budget of $RunBudgetSeconds s (of the connection's command_timeout_s of $([int]$Spec.command_timeout_s) s); raise command_timeout_s in the connection settings, then run again" '')
                }
                Write-AgentStopped $Folder $record
                $stopped += 'service'
                # The reserve is held back, not only checked: this wait gets what is left past the $needed s that
                # Stop()'s own waits and the starts after may take, so it cannot use them up (review-archive6 V1).
                $wait = Get-WaitBudgetBefore 120 $needed
                $stopReturned = $false
                try {
                    $service[0].Stop()
                    $stopReturned = $true
                    $service[0].WaitForStatus([System.ServiceProcess.ServiceControllerStatus]::Stopped, [TimeSpan]::FromSeconds($wait))
                } catch {
                    # Stop: InvalidOperationException (the service control manager refused), or the
                    # System.ServiceProcess.TimeoutException of its 30 s wait for a dependent; WaitForStatus: that
                    # TimeoutException (learn.microsoft.com ServiceController.Stop, WaitForStatus; referencesource Stop).
                    $reason = $_.Exception
                    while ($null -ne $reason.InnerException) { $reason = $reason.InnerException }
                    if ($stopReturned) {
                        # The wait for its stop timed out. A wait the reserve cut below its 120 s says so while the
                        # budget still holds the reserve (so Get-BudgetNote says nothing): raising command_timeout_s is
                        # then the fix (review-archive7 Z3).
                        $note = Get-BudgetNote
                        if ($wait -lt 120 -and $needed -gt 0 -and -not $note) {
                            $kept = 'the stops and starts around it'
                            if (-not $StartsAgain) { $kept = "Stop()'s waits for the dependent services" }
                            $note = " (the wait was cut to $wait s to keep $needed s of this run's wait budget of $RunBudgetSeconds s (of the connection's command_timeout_s of $([int]$Spec.command_timeout_s) s) for $kept; raise command_timeout_s in the connection settings, then run again)"
                        }
                        $failed = "did not stop within $wait s ($($reason.Message))"
                    } else {
                        # Stop() itself failed (review-archive9 R3): a refusal, or its own fixed 30 s wait for a
                        # dependent. Neither depends on this run's budget and the wait never began, so no note of a
                        # cut wait nor advice to raise command_timeout_s, which could not help (review-round2 V3).
                        $note = ''
                        $failed = "could not be stopped: ServiceController.Stop() failed ($($reason.Message)), before the wait of $wait s for its stop began"
                    }
                    throw (New-AgentStopError 'service_name' "service '$name' $failed; see the System event log, stop it (or end its process), then run again" $note)
                }
            }
        } finally {
            foreach ($entry in @($all) + @($dependents)) { $entry.Dispose() }
        }
    }
    return ,$stopped
}

function Wait-ServiceStateLeft($Service, [System.ServiceProcess.ServiceControllerStatus[]] $Passing, [int] $Seconds) {
    # Until the service's status is none of $Passing (Refresh() every 250 ms, as WaitForStatus does, within one
    # deadline), whatever it becomes: WaitForStatus waits for one status only and throws at its time-out when the
    # pending state ends otherwise (a start that fails: StartPending, then Stopped; referencesource ServiceController
    # WaitForStatus). Returns whether it left them.
    $clock = [System.Diagnostics.Stopwatch]::StartNew()
    $Service.Refresh()
    while ($Passing -contains $Service.Status) {
        if ($clock.Elapsed.TotalSeconds -ge $Seconds) { return $false }
        Start-Sleep -Milliseconds 250
        $Service.Refresh()
    }
    return $true
}

function Get-MergedAgentRecord([string] $Folder, $Record) {
    # What Write-AgentStopped writes (Stop-Agent also counts from it the dependents Start-Agent will start,
    # review-archive6 V6): agent-stopped.json, merged with the record already there (a run that broke off, or a
    # start that failed and is to be tried again), never in place of it: what it lists stays listed until
    # Start-Agent finishes it. Otherwise a service that a reboot started since would be recorded without the dependents that run broke off
    # with, and they would stay stopped. A pool or service this run stops itself is recorded with the AutoStart and
    # start type found now: it ran until now, so the earlier values (AutoStart true, say) no longer tell what a
    # stop on purpose since would be, and Start-Agent could leave stopped what was running before this run. The
    # earlier entry is kept with its own values only when this run records none (it stayed stopped since).
    $earlier = Read-AgentStopped $Folder
    $merged = [ordered]@{ pool = $Record.pool; auto_start = $Record.auto_start; service = $Record.service; start_type = $Record.start_type; dependents = @($Record.dependents) }
    if ($null -ne $earlier) {
        # (Records written before auto_start or start_type existed have none: Set-StrictMode refuses a missing property.)
        if ($earlier.pool -and -not $merged.pool) {
            $merged.pool = [string]$earlier.pool
            $autoStart = $earlier.PSObject.Properties['auto_start']
            $merged.auto_start = $null
            if ($null -ne $autoStart) { $merged.auto_start = $autoStart.Value }
        }
        if ($earlier.service -and -not $merged.service) {
            $merged.service = [string]$earlier.service
            $startType = $earlier.PSObject.Properties['start_type']
            $merged.start_type = $null
            if ($null -ne $startType) { $merged.start_type = $startType.Value }
        }
        if ($earlier.service -and [string]$earlier.service -eq [string]$merged.service) {
            $names = New-PathSet
            $union = @()
            foreach ($dependent in @($earlier.dependents) + @($merged.dependents)) {
                if ($dependent -and $names.Add([string]$dependent)) { $union += [string]$dependent }
            }
            $merged.dependents = $union
        }
    }
    return $merged
}

function Write-AgentStopped([string] $Folder, $Record) {
    Write-JsonFile (Get-AgentStoppedPath $Folder) (Get-MergedAgentRecord $Folder $Record)
}

function Get-PoolShutdownWait($Pool) {
    # How long a pool's stop and its worker's exit are waited for: WAS gives the worker up to the pool's
    # shutdownTimeLimit (90 s by default) to finish its requests, then ends it (learn.microsoft.com
    # applicationPools <processModel> shutdownTimeLimit); 30 s more for WAS itself, at most 150 s, so that
    # remove's two waits (the stop, then the worker's exit) stay well below the client's command_timeout_s
    # (600 s by default). A limit that cannot be read counts as the default.
    $limit = 90
    try { $limit = $Pool.ProcessModel.ShutdownTimeLimit.TotalSeconds } catch { $limit = 90 }
    return [int][Math]::Min($limit + 30, 150)
}

function Wait-PoolState($Pool, [string] $Final, [int] $Seconds) {
    # Start() and Stop() return while the pool is still Starting or Stopping. One deadline for the whole wait
    # (a Stopwatch): a State that throws costs Get-IisObjectState 5 s per read, which must not add up (the
    # shared Wait-IisObjectState counts rounds, not time). Returns the last state read.
    $clock = [System.Diagnostics.Stopwatch]::StartNew()
    $state = Get-IisObjectState { $Pool.State }
    while ($state -ne $Final -and $clock.Elapsed.TotalSeconds -lt $Seconds) {
        Start-Sleep -Milliseconds 250
        $state = Get-IisObjectState { $Pool.State }
    }
    return $state
}

function Wait-PoolStateLeft($Pool, [string[]] $Passing, [int] $Seconds) {
    # Wait-PoolState for the states $Passing to end, whatever follows them (a stop that ends Stopped, an Unknown
    # that turns out Started): one deadline for the whole wait. Read with Get-AgentPoolState (Unknown while WAS is
    # Stopped counts as Stopped). Returns the last state read.
    $clock = [System.Diagnostics.Stopwatch]::StartNew()
    $state = Get-AgentPoolState $Pool
    while ($Passing -contains $state -and $clock.Elapsed.TotalSeconds -lt $Seconds) {
        Start-Sleep -Milliseconds 250
        $state = Get-AgentPoolState $Pool
    }
    return $state
}

function Get-AgentPoolState($Pool) {
    # Get-IisObjectState of the pool, but Stopped when State cannot be read (Unknown) because WAS is Stopped
    # (review-archive4 R1): State is runtime data WAS answers (an IAppHostProperty read that throws a COMException
    # when it does not: TheFlyingCorpse/check_iis#3's stack, Site.get_State -> IAppHostProperty.get_Value; appcmd
    # lists every pool 'state:Unknown' then, microsoft/azure-pipelines-tasks#18901), and WAS starts and ends every
    # worker process (learn.microsoft.com "IIS Application Pool Availability": application pools depend on WAS), so
    # no worker runs while it is Stopped: nothing to stop or record. Only Stopped: while WAS is StartPending (coming
    # up after a reboot) it may start the pool any moment, so Unknown is waited out as before.
    $state = Get-IisObjectState { $Pool.State }
    if ($state -eq 'Unknown' -and (Test-WasStopped)) { return 'Stopped' }
    return $state
}

function Test-WasStopped {
    # The Windows Process Activation Service's status, read through ServiceController (an enum, never text). A
    # host without it (no IIS) counts as not stopped: the pool's wait then ends as it did before.
    $all = [System.ServiceProcess.ServiceController]::GetServices()
    try {
        $was = @($all | Where-Object { $_.ServiceName -eq 'WAS' })
        return ($was.Count -eq 1 -and $was[0].Status -eq [System.ServiceProcess.ServiceControllerStatus]::Stopped)
    } finally {
        foreach ($entry in $all) { $entry.Dispose() }
    }
}

function Get-WaitBudget([int] $Seconds) {
    # $Seconds, or less: what is left of this run's budget for its waits (review-archive4 R3). set and remove start
    # $RunClock at their top; $RunBudgetSeconds comes from the input (wait_budget_s: a share of the connection's
    # command_timeout_s, the rest left for the work between the waits), so that the waits of one run (a pool's stop,
    # its worker's exit, a service and its dependents, the start after) never add up past the client's time-out,
    # which would leave the host's run going on unseen. Every wait of Stop-Agent and Start-Agent takes its time here.
    $left = [Math]::Floor($RunBudgetSeconds - $RunClock.Elapsed.TotalSeconds)
    return [int][Math]::Max(0, [Math]::Min($Seconds, $left))
}

function Get-WaitBudgetBefore([int] $Seconds, [int] $Later) {
    # Get-WaitBudget for a wait that waits of up to $Later s still follow which no budget caps (Stop()'s 30 s for each
    # running dependent, StartService's 30 s for each service started, StartServiceCtrlDispatcherA remarks): what is
    # left past them, so that this wait cannot use them up (review-archive6 V1, review-archive7 Z1). Int32 throughout.
    return [int][Math]::Max(0, (Get-WaitBudget ($Seconds + $Later)) - $Later)
}

function Get-BudgetNote {
    # What a wait cut short by the run's budget adds to its message ('' while a whole second of it is left). Both
    # numbers come from the input, so the text never states a share the provider no longer uses (review-archive5 W6).
    if ((Get-WaitBudget 1) -gt 0) { return '' }
    return " (the wait was cut short: this run's waits had used their budget of $RunBudgetSeconds s, of the connection's command_timeout_s of $([int]$Spec.command_timeout_s) s; raise command_timeout_s in the connection settings, then run again)"
}

function Get-StartCutNote([int] $Wait, [int] $Asked, [int] $Kept) {
    # What a start wait adds to its message when the $Kept s held back for the StartService calls still to come cut it
    # below its $Asked s (Get-WaitBudgetBefore), '' otherwise. Get-BudgetNote says nothing then (the budget still holds
    # them), so without this a wait cut to 0 s named neither the budget nor the setting that gives it more time
    # (review-archive9 R1).
    if ($Wait -ge $Asked -or $Kept -le 0) { return '' }
    return " (the wait was cut to $Wait s: this run's wait budget of $RunBudgetSeconds s (of the connection's command_timeout_s of $([int]$Spec.command_timeout_s) s) ran out for it, as $Kept s are held back for the StartService calls still to come (up to 30 s each); raise command_timeout_s in the connection settings to give it more time, then run again)"
}

function New-AgentStopError([string] $Property, [string] $Message, [string] $Note = (Get-BudgetNote)) {
    # AgentStopFailed (New-OperationError), with Get-BudgetNote when the run's budget cut the wait short; $Note in
    # its place when the caller knows better ('' for a refusal before any wait, review-archive6 V5).
    return (New-OperationError 'AgentStopFailed' $Property "$Message$Note")
}

function Assert-PoolWorkerExited([string] $PoolName, [bool] $StartedAgain) {
    # Wait-PoolWorkerExit, then AgentStopFailed when a worker still runs: no file is swapped beside a live worker,
    # which may still load a not yet loaded assembly from the half-swapped Runtime. (Not ended here: a pool whose
    # shutdownTimeLimit is above the wait lets its requests run that long on purpose; WAS ends the worker then.)
    # $StartedAgain: this run stopped the pool, and the caller starts it again from the record, so a run that comes
    # later stops it again and waits for the same drain: the message says how to end that (review-archive4 R4).
    $left = Wait-PoolWorkerExit $PoolName
    if ($left -gt 0) {
        $after = 'nothing was replaced beside them'
        # (Said before the start is tried: what it did follows in set's message, review-archive5 W5.)
        if ($StartedAgain) { $after = 'nothing was replaced beside them, and this run then tries to start the pool again (the outcome follows; once it runs, the next run would wait for the same drain)' }
        throw (New-AgentStopError 'app_pool' "application pool '$PoolName' is stopped, but $left of its worker processes (w3wp.exe) still ran after the wait (its shutdownTimeLimit and 30 s, at most 150 s), draining their requests; $after. Lower the pool's shutdownTimeLimit to 120 s or less, or end the draining w3wp.exe before the run, then run again")
    }
}

function Wait-PoolWorkerExit([string] $PoolName) {
    # A stopped pool's worker (w3wp.exe) may go on for up to the pool's shutdownTimeLimit (90 s by default),
    # mapping the agent's images until it exits; WAS terminates it then (learn.microsoft.com applicationPools
    # <processModel> shutdownTimeLimit). Waited for until the pool lists no worker process, within
    # Get-PoolShutdownWait (a fresh ServerManager for each look: its runtime data is read once). Returns how many
    # worker processes the pool still lists (0: none). A look that fails ends the wait with 0 (nothing known to
    # run: the runtime data fails when WAS does not run); remove's deletion then says what is still held.
    $limit = $null
    $clock = [System.Diagnostics.Stopwatch]::StartNew()
    while ($true) {
        $manager = New-Object Microsoft.Web.Administration.ServerManager
        try {
            $pool = $manager.ApplicationPools[$PoolName]
            if ($null -eq $pool) { return 0 }
            if ($null -eq $limit) { $limit = Get-WaitBudget (Get-PoolShutdownWait $pool) }
            $count = @($pool.WorkerProcesses).Count
        } catch {
            return 0
        } finally {
            $manager.Dispose()
        }
        if ($count -eq 0 -or $clock.Elapsed.TotalSeconds -ge $limit) { return [int]$count }
        Start-Sleep -Milliseconds 500
    }
}

function Start-Agent([string] $Folder) {
    # Finishes what agent-stopped.json records (this run's Stop-Agent, or an earlier run that broke before it
    # started the agent again), then deletes the record. The record says that this project stopped the pool
    # or service and has not started it since; what is found now decides, so that a record left behind
    # neither blocks every later run nor starts what someone stopped on purpose since:
    # - gone (deleted since): nothing to start;
    # - running (someone started it since): nothing to do;
    # - a pool whose AutoStart was true when it was stopped (the record says) and is false now: stopped on
    #   purpose since (how a pool is kept stopped: IisAppPool state 'Stopped' sets it so, and WAS does not
    #   start such a pool with IIS, learn.microsoft.com applicationPools <add> autoStart): left stopped;
    # - a service whose start type is Disabled now and was not when it was stopped: left stopped;
    # - stopped otherwise: started.
    # The services that depend on the agent's service get its outcome when it does not run (StartService
    # would start it first and fail, ERROR_SERVICE_DEPENDENCY_FAIL 1068 or _DELETED 1075, learn.microsoft.com
    # StartService). Throws nothing but an operation's end (IIS missing). Returns one entry per pool or service:
    # property, name, outcome and failed (it did not start: the outcome says why and what to do); the record
    # is deleted only when none failed, so that the next run tries again.
    $record = Read-AgentStopped $Folder
    if ($null -eq $record) { return ,@() }
    $outcomes = @()
    # Each capped wait keeps 30 s of the budget for every StartService still to come (the service, then each
    # dependent not yet started): StartService blocks up to 30 s, capped by nothing (review-archive7 Z1).
    $dependentsLeft = @($record.dependents).Count
    $servicesLeft = 0
    if ($record.service) { $servicesLeft = 1 + $dependentsLeft }
    if ($record.pool) {
        $name = [string]$record.pool
        # (A record written before auto_start was recorded has none: Set-StrictMode refuses a missing property.)
        $autoStartThen = $record.PSObject.Properties['auto_start']
        Import-IisAdministration
        $outcome = $null
        $problem = 'it did not reach Started'
        $manager = New-Object Microsoft.Web.Administration.ServerManager
        try {
            $pool = $manager.ApplicationPools[$name]
            if ($null -eq $pool) {
                $outcome = 'gone (nothing to start)'
            } elseif ((Get-IisObjectState { $pool.State }) -eq 'Started') {
                $outcome = 'running (started since)'
            } elseif ($null -ne $autoStartThen -and $autoStartThen.Value -eq $true -and -not $pool.AutoStart) {
                $outcome = 'left stopped (its AutoStart was set to false since: stopped on purpose)'
            } else {
                [void]$pool.Start()
                $state = Wait-PoolState $pool 'Started' (Get-WaitBudgetBefore 10 (30 * $servicesLeft))
                if ($state -eq 'Started') { $outcome = 'Started' } else { $problem = "state $state$(Get-BudgetNote)" }
            }
        } catch {
            $reason = $_.Exception
            while ($null -ne $reason.InnerException) { $reason = $reason.InnerException }
            $problem = $reason.Message
        } finally {
            $manager.Dispose()
        }
        if ($null -eq $outcome) {
            # WAS stopped (its status enum, never the error's text): the pool can start only once WAS runs (V7);
            # named as the pool, so that 'it' cannot be read as WAS (review-archive7 Z5).
            $then = 'see the System event log (WAS), then start it'
            if (Test-WasStopped) { $then = 'start the Windows Process Activation Service (WAS) first, then start the pool (see the System event log (WAS))' }
            $outcomes += [ordered]@{ property = 'agent_pool'; name = $name; failed = $true; outcome = "did not start again ($problem); $then, or set its AutoStart to false to keep it stopped (the next run then leaves it)" }
        } else {
            $outcomes += [ordered]@{ property = 'agent_pool'; name = $name; failed = $false; outcome = $outcome }
        }
    }
    if ($record.service) {
        # (A record written before start_type was recorded has none.)
        $startTypeThen = $record.PSObject.Properties['start_type']
        $disabledThen = $null -ne $startTypeThen -and [string]$startTypeThen.Value -eq 'Disabled'
        $main = Start-RecordedService ([string]$record.service) $disabledThen (30 * $dependentsLeft)
        $outcomes += $main
        $runs = @('Started', 'running (started since)') -contains $main.outcome
        foreach ($name in @($record.dependents)) {
            $dependentsLeft--
            if ($runs) {
                $outcomes += Start-RecordedService ([string]$name) $false (30 * $dependentsLeft)
            } else {
                $outcomes += [ordered]@{ property = 'agent_service'; name = [string]$name; failed = $main.failed; outcome = "not started: it depends on service '$($main.name)', which $($main.outcome)" }
            }
        }
    }
    if (@($outcomes | Where-Object { $_.failed }).Count -eq 0) { [System.IO.File]::Delete((Get-AgentStoppedPath $Folder)) }
    return ,$outcomes
}

function Start-RecordedService([string] $Name, [bool] $DisabledThen, [int] $LaterSeconds) {
    # Start-Agent for one service ($DisabledThen: its start type was Disabled when it was stopped, so Disabled
    # now says nothing about a stop on purpose; $LaterSeconds: what the StartService calls after it may take, kept
    # from its waits): its entry (property, name, failed, outcome).
    $all = [System.ServiceProcess.ServiceController]::GetServices()
    $outcome = $null
    $problem = $null
    $cutNote = ''
    try {
        $found = @($all | Where-Object { $_.ServiceName -eq $Name })
        $pendingStart = @([System.ServiceProcess.ServiceControllerStatus]::StartPending, [System.ServiceProcess.ServiceControllerStatus]::ContinuePending)
        if ($found.Count -eq 1 -and $pendingStart -contains $found[0].Status) {
            # Someone is starting it (a delayed automatic start after a reboot): StartService would fail with
            # ERROR_SERVICE_ALREADY_RUNNING 1056 (learn.microsoft.com StartService), so its start is waited for until
            # it ends either way, then taken as it is below: running, nothing to do; Stopped (that start failed), it
            # is started here, and its own failure is what is reported (not a time-out). (No Get-BudgetNote here: the
            # catch below adds it to every error, review-archive5 W4.) The wait keeps 30 s more, for the Start() below
            # when that start ends Stopped: StartService blocks up to 30 s, capped by nothing (review-archive9 R2).
            $reserve = $LaterSeconds + 30
            $wait = Get-WaitBudgetBefore 60 $reserve
            $cutNote = Get-StartCutNote $wait 60 $reserve
            if (-not (Wait-ServiceStateLeft $found[0] $pendingStart $wait)) {
                throw (New-Object System.TimeoutException "it is still $($found[0].Status) after $wait s")
            }
            $cutNote = ''
        }
        if ($found.Count -eq 0) {
            $outcome = 'gone (nothing to start)'
        } elseif (@([System.ServiceProcess.ServiceControllerStatus]::Stopped, [System.ServiceProcess.ServiceControllerStatus]::StopPending) -notcontains $found[0].Status) {
            # Running, or paused since (StartService would fail with 1056 there too).
            $outcome = 'running (started since)'
        } elseif ($found[0].StartType -eq [System.ServiceProcess.ServiceStartMode]::Disabled -and -not $DisabledThen) {
            $outcome = 'left stopped (its start mode is Disabled)'
        } else {
            $found[0].Start()
            $wait = Get-WaitBudgetBefore 60 $LaterSeconds
            $cutNote = Get-StartCutNote $wait 60 $LaterSeconds
            $found[0].WaitForStatus([System.ServiceProcess.ServiceControllerStatus]::Running, [TimeSpan]::FromSeconds($wait))
            $outcome = 'Started'
        }
    } catch {
        $reason = $_.Exception
        while ($null -ne $reason.InnerException) { $reason = $reason.InnerException }
        # The budget's note when it is spent; otherwise that of the wait under way when the reserve cut it ('' for an
        # error of Start() itself or of any other call: no wait was cut there).
        $note = Get-BudgetNote
        if (-not $note) { $note = $cutNote }
        $problem = "$($reason.Message)$note"
    } finally {
        foreach ($entry in $all) { $entry.Dispose() }
    }
    if ($null -eq $problem) { return [ordered]@{ property = 'agent_service'; name = $Name; failed = $false; outcome = $outcome } }
    $hint = 'see the System event log, then start it, or disable it to keep it stopped (the next run then leaves it)'
    # StartService refuses a disabled service (ERROR_SERVICE_DISABLED 1058, learn.microsoft.com StartService).
    if ($DisabledThen) { $hint = 'it was Disabled already when it was stopped (it ran nonetheless): set its start mode to Manual or Automatic to have it started, or delete it' }
    return [ordered]@{ property = 'agent_service'; name = $Name; failed = $true; outcome = "did not start again ($problem); $hint" }
}

function Get-StartReport([object[]] $Outcomes) {
    # Start-Agent's entries in one sentence ('' when nothing was recorded).
    return (@($Outcomes | ForEach-Object { "$($_.name): $($_.outcome)" }) -join '; ')
}

function New-OperationError([string] $Id, [string] $Property, [string] $Message) {
    # An error with an id that, unlike Stop-Operation, ends nothing by itself: the caller may start the agent
    # again and clean up first, then report it (Get-ErrorReport, Stop-Reported).
    $exception = New-Object System.InvalidOperationException $Message
    $exception.Data['UsercubeErrorId'] = $Id
    $exception.Data['UsercubeErrorProperty'] = $Property
    return $exception
}

function Get-ErrorReport([System.Exception] $Exception) {
    # What an error says, to report it later: its id and property (New-OperationError's, or an operation's
    # end's, from its envelope) and the innermost exception's message; no id for any other error.
    for ($inner = $Exception; $null -ne $inner; $inner = $inner.InnerException) {
        if ($inner.Data.Contains('UsercubeErrorId')) {
            return [ordered]@{ id = [string]$inner.Data['UsercubeErrorId']; property = [string]$inner.Data['UsercubeErrorProperty']; message = $inner.Message }
        }
        if ($inner.Data.Contains('UsercubeEnvelope')) {
            $envelope = $JsonSerializer.DeserializeObject([string]$inner.Data['UsercubeEnvelope'])
            if ($envelope.ContainsKey('error')) {
                $reported = $envelope['error']
                return [ordered]@{ id = [string]$reported['id']; property = [string]$reported['property']; message = [string]$reported['message'] }
            }
        }
    }
    $reason = $Exception
    while ($null -ne $reason.InnerException) { $reason = $reason.InnerException }
    return [ordered]@{ id = ''; property = ''; message = $reason.Message }
}

function Stop-Reported([System.Exception] $Exception) {
    # Ends the operation with what Get-ErrorReport finds (UnexpectedError for an error without an id).
    $report = Get-ErrorReport $Exception
    $id = $report.id
    if (-not $id) { $id = 'UnexpectedError' }
    Stop-Operation -Id $id -Property $report.property -Message $report.message
}

function Get-AgentLabel($Spec) {
    if ($Spec.app_pool) { return "application pool '$($Spec.app_pool)'" }
    return "service '$($Spec.service_name)'"
}

function Undo-Swap([object[]] $Moves) {
    # Every planned move undone, newest first, where it was done (its target exists and its source does not):
    # right after a failure, and by a later run for a swap that was interrupted. An undo that fails does not
    # stop the others; the failures are returned.
    $errors = @()
    for ($index = $Moves.Count - 1; $index -ge 0; $index--) {
        $from = [string]$Moves[$index][0]; $to = [string]$Moves[$index][1]
        if (-not [System.IO.File]::Exists($to) -or [System.IO.File]::Exists($from)) { continue }
        try {
            New-ParentFolder $from
            Move-FileWithRetry $to $from
        } catch {
            $errors += "$to -> $from ($($_.Exception.Message))"
        }
    }
    return ,$errors
}

function Restore-InterruptedSwap($Spec, [string] $RuntimePath, [string] $Folder, [bool] $StartsAgain) {
    # swap.json (written before the first move, deleted after the manifest) says a swap was under way. If the
    # manifest records its sha256 and its keep_files (the same archive may be installed again with other kept
    # files; a journal from before keep_files was recorded is matched on sha256 alone) the swap was committed:
    # only the cleanup was left. Otherwise every move it
    # planned is undone from .iac-old before anything there is deleted (.iac-old holds the only copies), the
    # agent stopped first: a reboot or an iisreset since may have started it on the mix the swap left (WAS
    # starts a pool whose AutoStart is true, learn.microsoft.com applicationPools <add> autoStart; Windows an
    # Automatic service). Stop-Agent records it, so the caller's Start-Agent starts it again; its
    # AgentStopFailed is thrown to the caller, nothing undone. Returns what it stopped (Stop-Agent's list).
    # $StartsAgain: Stop-Agent's (set starts the agent again after it, remove does not).
    $stopped = @()
    $path = Get-SwapJournalPath $Folder
    if (-not [System.IO.File]::Exists($path)) { return ,$stopped }
    $journal = ConvertTo-SpecObject ($JsonSerializer.DeserializeObject([System.IO.File]::ReadAllText($path)))
    $manifest = Read-Manifest $Folder
    $committed = ($null -ne $manifest -and [string]$manifest.sha256 -eq [string]$journal.sha256)
    if ($committed -and $null -ne $journal.PSObject.Properties['keep_files']) {
        $kept = New-PathSet
        # Get-KeptFiles writes its list as one object (return ,@(...)): @() around the call would wrap it in a
        # one-element array, and [string] would join the whole list into one name (review-keepfiles K1).
        foreach ($file in (Get-KeptFiles $manifest)) { [void]$kept.Add([string]$file) }
        $committed = $kept.SetEquals([string[]]@($journal.keep_files))
    }
    if (-not $committed) {
        $stopped = Stop-Agent $Spec $Folder $StartsAgain
        $errors = Undo-Swap @($journal.moves)
        if ($errors.Count -gt 0) {
            Stop-Operation -Id 'SwapRollbackIncomplete' -Property 'runtime_path' -Message "an interrupted installation could not be undone: $($errors -join '; '). The files not put back are in $([System.IO.Path]::Combine($RuntimePath, $OldFolderName)), which was kept; put them back by hand, delete $path, then run again (what the installation stopped stays stopped until then: it would run a mix of both versions)"
        }
    }
    [void](Remove-TreeBestEffort ([System.IO.Path]::Combine($RuntimePath, $NewFolderName)))
    [System.IO.File]::Delete($path)
    return ,$stopped
}
