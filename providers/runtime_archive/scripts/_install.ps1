# Helpers of the RuntimeArchive scripts that change Runtime (set, remove); included after _staging.ps1.

function New-PathSet {
    # NTFS names ignore case.
    return ,(New-Object 'System.Collections.Generic.HashSet[string]' ([System.StringComparer]::OrdinalIgnoreCase))
}

function Get-ArchiveFileList([string] $Zip, [string] $RuntimePath) {
    # The relative paths of the archive's files, checked before anything is extracted: a name that would
    # leave the folder, that Windows refuses or that .NET Framework (no long paths) cannot create stops the
    # operation here, with the agent untouched.
    $invalid = [System.IO.Path]::GetInvalidFileNameChars()
    $files = New-Object 'System.Collections.Generic.List[string]'
    $seen = New-PathSet
    $archive = [System.IO.Compression.ZipFile]::OpenRead($Zip)
    try {
        foreach ($entry in $archive.Entries) {
            $name = $entry.FullName.Replace('/', '\')
            $isFolder = $name.EndsWith('\')
            $relative = $name.TrimEnd('\')
            $parts = $relative.Split('\')
            # (Counted: a pipeline that yields only the empty segment would read as false.)
            $bad = ($relative.Length -eq 0) -or @($parts | Where-Object { $_ -eq '' -or $_ -eq '.' -or $_ -eq '..' -or $_.IndexOfAny($invalid) -ge 0 }).Count -gt 0
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
            if ($isFolder) { continue }
            if (-not $seen.Add($relative)) {
                Stop-Operation -Id 'ArchiveEntryRefused' -Property 'sha256' -Message "the archive holds '$relative' twice (names ignore case on Windows)"
            }
            $files.Add($relative)
        }
    } finally {
        $archive.Dispose()
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

function Stop-Agent($Spec) {
    # What runs the agent, stopped when it was running (a running agent holds its DLLs: they can be neither
    # overwritten nor deleted). Returns what it stopped, for Start-Agent.
    $stopped = @()
    if ($Spec.app_pool) {
        Import-IisAdministration
        $manager = New-Object Microsoft.Web.Administration.ServerManager
        try {
            $pool = $manager.ApplicationPools[[string]$Spec.app_pool]
            if ($null -ne $pool -and (Get-IisObjectState { $pool.State }) -eq 'Started') {
                [void]$pool.Stop()
                if ((Wait-IisObjectState { $pool.State } @('Stopped')) -ne 'Stopped') {
                    Stop-Operation -Id 'AgentStopFailed' -Property 'app_pool' -Message "application pool '$($Spec.app_pool)' did not stop within 10 s; nothing was changed in Runtime"
                }
                $stopped += 'pool'
            }
        } finally {
            $manager.Dispose()
        }
    }
    if ($Spec.service_name) {
        $service = @([System.ServiceProcess.ServiceController]::GetServices() | Where-Object { $_.ServiceName -eq [string]$Spec.service_name })
        if ($service.Count -eq 1 -and $service[0].Status -eq [System.ServiceProcess.ServiceControllerStatus]::Running) {
            $service[0].Stop()
            $service[0].WaitForStatus([System.ServiceProcess.ServiceControllerStatus]::Stopped, [TimeSpan]::FromSeconds(60))
            $stopped += 'service'
        }
    }
    return ,$stopped
}

function Start-Agent($Spec, [string[]] $Stopped) {
    if ($Stopped -contains 'pool') {
        Import-IisAdministration
        $manager = New-Object Microsoft.Web.Administration.ServerManager
        try {
            $pool = $manager.ApplicationPools[[string]$Spec.app_pool]
            [void]$pool.Start()
            $state = Wait-IisObjectState { $pool.State } @('Started')
        } finally {
            $manager.Dispose()
        }
        if ($state -ne 'Started') {
            Stop-Operation -Id 'AgentStartFailed' -Property 'app_pool' -Message "application pool '$($Spec.app_pool)' did not start again (state $state); see the System event log (WAS), then start it"
        }
    }
    if ($Stopped -contains 'service') {
        $service = New-Object System.ServiceProcess.ServiceController ([string]$Spec.service_name)
        try {
            $service.Start()
            $service.WaitForStatus([System.ServiceProcess.ServiceControllerStatus]::Running, [TimeSpan]::FromSeconds(60))
        } finally {
            $service.Dispose()
        }
    }
}
