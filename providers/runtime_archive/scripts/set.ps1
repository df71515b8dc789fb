param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_iis.ps1' %}
{% include '_staging.ps1' %}
{% include '_install.ps1' %}

# Installs the uploaded archive in Runtime:
# 0. finishes what an interrupted run left: undoes a swap it did not commit (swap.json), starts the agent it
#    stopped (agent-stopped.json; unless it is gone, runs, or was stopped on purpose since: see Start-Agent),
#    removes its work folders;
# 1. checks the staging file against sha256 and every entry name, then extracts it into Runtime\.iac-new,
#    all from one handle no one else can write (a failure here leaves the running version untouched);
# 2. stops the agent if a file it runs from is to be replaced or removed;
# 3. moves each replaced or obsolete file to Runtime\.iac-old and each new one into place (same volume:
#    renames, so each file keeps the permissions Runtime gives it), undoing every move on a failure;
# 4. records the new file list (the commit), starts the agent again, then deletes the old files (best
#    effort: an exiting worker may still map them) and the staging file.
# keep_files (the settings files the stack writes) are never taken from the archive nor removed. The manifest records
# them: the same archive installed with other keep_files is installed again, so that a file no longer kept comes
# from the archive (a production agent's appsettings.json, kept by the former default, which nothing wrote).
# Every wait of the run (the agent's stop and start) takes its time from one budget (Get-WaitBudget), from here.
$RunClock = [System.Diagnostics.Stopwatch]::StartNew()
$RunBudgetSeconds = [int]$Spec.wait_budget_s
$runtime = [string]$Spec.runtime_path
$sha = [string]$Spec.sha256
$folder = Get-StagingFolder $runtime
Initialize-StagingFolder $folder
$new = [System.IO.Path]::Combine($runtime, $NewFolderName)
$old = [System.IO.Path]::Combine($runtime, $OldFolderName)
$keep = New-PathSet
foreach ($file in @($Spec.keep_files)) { [void]$keep.Add([string]$file) }
$recovered = @()
if ([System.IO.File]::Exists((Get-SwapJournalPath $folder))) {
    # (Its AgentStopFailed is reported with its id; SwapRollbackIncomplete, an operation's end, goes on as it is.)
    try { [void](Restore-InterruptedSwap $Spec $runtime $folder $true) } catch { if (Test-OperationEnd $_.Exception) { throw }; Stop-Reported $_.Exception }
    $recovered += New-Change -Property 'interrupted_swap' -Before 'pending' -After 'finished'
}
# A start that fails here does not stop the run: it is reported and its record kept, and the installation
# goes on (its own stop and start handle the agent; the new version, or the settings the resources after
# this one write, may be what it needs to start). Failing here would block every later run for good.
foreach ($start in (Start-Agent $folder)) { $recovered += New-Change -Property $start.property -Before "$($start.name): stopped by an interrupted run" -After $start.outcome }
$before = Get-ArchiveState $Spec
# (SetEquals: the same paths in any order, case aside, as NTFS compares names.)
$keptAsBefore = $keep.SetEquals([string[]]@($before.kept_files))
if ($before.sha256 -eq $sha -and @($before.missing_files).Count -eq 0 -and $keptAsBefore) {
    # Left by a run that committed but could not delete them (held images), or was interrupted.
    foreach ($work in @($new, $old)) {
        if ([System.IO.Directory]::Exists($work) -and (Remove-TreeBestEffort $work)) { $recovered += New-Change -Property 'work_folder' -Before $work -After $null }
    }
    Complete-Operation -State (Get-ArchiveState $Spec) -Changed ($recovered.Count -gt 0) -Changes $recovered
}
$partial = Get-PartialPath $folder $sha
if ($before.held_bytes -ne [long]$Spec.size) {
    Stop-Operation -Id 'ArchiveNotUploaded' -Property 'sha256' -Message "the host holds $($before.held_bytes) of the archive's $($Spec.size) bytes; upload it first (the chunk operation)"
}
if ($before.held_sha256 -ne $sha) {
    [System.IO.File]::Delete($partial)
    Stop-Operation -Id 'ArchiveHashMismatch' -Property 'sha256' -Message "the uploaded file has SHA-256 $($before.held_sha256), not $sha; it was deleted, and the next run uploads it again"
}

# ZipArchive is in System.IO.Compression.dll, ZipFileExtensions in System.IO.Compression.FileSystem.dll.
Add-Type -AssemblyName System.IO.Compression
Add-Type -AssemblyName System.IO.Compression.FileSystem
# One handle for the check and the extraction, opened without write or delete sharing (FileShare.Read): while
# it is open nobody can change, rename or replace the file (learn.microsoft.com CreateFile, dwShareMode), so
# what is extracted is what was hashed here.
$stream = [System.IO.FileStream]::new($partial, [System.IO.FileMode]::Open, [System.IO.FileAccess]::Read, [System.IO.FileShare]::Read)
try {
    $heldSha = Get-StreamSha256 $stream
    if ($heldSha -ne $sha) {
        $stream.Dispose()
        [System.IO.File]::Delete($partial)
        Stop-Operation -Id 'ArchiveHashMismatch' -Property 'sha256' -Message "the uploaded file has SHA-256 $heldSha, not $sha; it was deleted, and the next run uploads it again"
    }
    $stream.Position = 0
    $archive = $null
    try {
        $archive = [System.IO.Compression.ZipArchive]::new($stream, [System.IO.Compression.ZipArchiveMode]::Read, $true)
        # In Read mode the constructor reads only the End of Central Directory record; the central directory is
        # read on the first Entries (referencesource ZipArchive.cs Init, Entries -> EnsureCentralDirectoryRead): a
        # damaged one throws InvalidDataException there, so it is read here, inside this catch.
        [void]$archive.Entries.Count
    } catch {
        # InvalidDataException: the file has the declared SHA-256 but is no zip archive, or a damaged one
        # (learn.microsoft.com ZipArchive constructor, Entries). (The stream is disposed by the finally below.)
        if ($null -ne $archive) { $archive.Dispose() }
        $reason = $_.Exception
        while ($null -ne $reason.InnerException) { $reason = $reason.InnerException }
        Stop-Operation -Id 'ArchiveInvalid' -Property 'source_path' -Message "$($Spec.archive_name) (SHA-256 $sha) is not a zip archive ($($reason.Message)); set source_path to the agent's runtime .zip file"
    }
    try {
        $files = @((Get-ArchiveFileList $archive $runtime) | Where-Object { -not $keep.Contains($_) })
        $incoming = New-PathSet
        foreach ($file in $files) { [void]$incoming.Add($file) }
        $previous = @()
        $manifest = Read-Manifest $folder
        if ($null -ne $manifest) { $previous = @($manifest.files) }
        $obsolete = @($previous | Where-Object { -not $incoming.Contains([string]$_) -and -not $keep.Contains([string]$_) -and [System.IO.File]::Exists([System.IO.Path]::Combine($runtime, [string]$_)) })
        $replaced = @($files | Where-Object { [System.IO.File]::Exists([System.IO.Path]::Combine($runtime, $_)) })

        $changes = @($recovered)
        if (-not [System.IO.Directory]::Exists($runtime)) {
            [void][System.IO.Directory]::CreateDirectory($runtime)
            $changes += New-Change -Property 'runtime_path' -Before $null -After $runtime
        }
        # No swap journal is left here (undone above): these hold nothing but copies and leftovers (an exiting
        # worker or an antivirus scan may still hold one for a moment).
        foreach ($work in @($new, $old)) {
            if (-not (Remove-TreeBestEffort $work)) {
                Stop-Operation -Id 'WorkFolderBusy' -Property 'runtime_path' -Message "$work, left by the previous installation, cannot be deleted yet (a program still holds a file in it); nothing was changed: run again in a minute"
            }
        }
        # Entry by entry (their names were checked above), as ZipFileExtensions.ExtractToDirectory does, but
        # never a kept file: the archive's own web.config or appsettings would otherwise sit in the running
        # site's folder (.iac-new is below Runtime, the site's root, and IIS reads a web.config in any folder of
        # a site) until the swap. .iac-new stays below Runtime: a file moved on the same volume keeps its
        # permissions, so it must inherit Runtime's (an admin-only sibling, or an admin-only protected DACL on
        # .iac-new, would lock the agent out). Runtime's inherited DACL may let Users create folders in it (a
        # stock C:\): that is the working directory's permissions to fix, not this folder's (README, known limit).
        # ExtractToFile with overwrite $false refuses a file that exists (IOException): $new is always new.
        $failure = $null
        try {
            [void][System.IO.Directory]::CreateDirectory($new)
            foreach ($entry in $archive.Entries) {
                $name = $entry.FullName.Replace('/', '\')
                $target = [System.IO.Path]::Combine($new, $name.TrimEnd('\'))
                if ($name.EndsWith('\')) {
                    if ($entry.Length -ne 0) { throw (New-Object System.IO.IOException "Zip entry name ends in directory separator character but contains data.") }
                    [void][System.IO.Directory]::CreateDirectory($target)
                    continue
                }
                if ($keep.Contains($name)) { continue }
                New-ParentFolder $target
                [System.IO.Compression.ZipFileExtensions]::ExtractToFile($entry, $target, $false)
            }
        } catch {
            $failure = $_.Exception
        }
    } finally {
        $archive.Dispose()
    }
} finally {
    $stream.Dispose()
}
if ($null -ne $failure) {
    while ($null -ne $failure.InnerException) { $failure = $failure.InnerException }
    # (A cleanup error is secondary: added to the message, never in place of it.)
    $cleanup = ''
    try { Remove-Tree $new } catch { $cleanup = " Deleting what was extracted failed too: $((Get-ErrorReport $_.Exception).message) (the next run deletes it)." }
    Stop-Operation -Id 'ExtractionFailed' -Property 'sha256' -Message "extracting $($Spec.archive_name) failed: $($failure.Message) The version in $runtime was not touched and still runs.$cleanup"
}

$plan = New-Object System.Collections.ArrayList
foreach ($file in $replaced + $obsolete) { [void]$plan.Add(@([System.IO.Path]::Combine($runtime, [string]$file), [System.IO.Path]::Combine($old, [string]$file))) }
foreach ($file in $files) { [void]$plan.Add(@([System.IO.Path]::Combine($new, $file), [System.IO.Path]::Combine($runtime, $file))) }
# Every error of the swap is caught and kept (no finally: an error thrown there would replace it); the
# first one is what the user sees, what follows (undo, start, cleanup) is added to its message.
$stopped = @()
$failure = $null
$swapBegun = $false
try {
    if ($replaced.Count + $obsolete.Count -gt 0) { $stopped = Stop-Agent $Spec $folder $true }
    # A stopped pool's worker drains its requests for up to its shutdownTimeLimit and may still load an assembly
    # from Runtime meanwhile: the swap waits for it to exit, as remove does, and never begins beside one still
    # running after the wait (AgentStopFailed: undone, nothing moved, the pool started again).
    if ($stopped -contains 'pool') { Assert-PoolWorkerExited ([string]$Spec.app_pool) $true }
    # The journal before the first move: a run that breaks in the middle leaves what undoes it.
    Write-JsonFile (Get-SwapJournalPath $folder) ([ordered]@{ sha256 = $sha; keep_files = @($Spec.keep_files | ForEach-Object { [string]$_ }); moves = @($plan) })
    $swapBegun = $true
    foreach ($move in $plan) {
        New-ParentFolder $move[1]
        Move-FileWithRetry $move[0] $move[1]
    }
    Write-Manifest $folder ([ordered]@{ sha256 = $sha; archive_name = [string]$Spec.archive_name; files = @($files); keep_files = @($Spec.keep_files | ForEach-Object { [string]$_ }) })
} catch {
    # An operation's end comes only from Import-IisAdministration (IIS missing), before anything was stopped.
    if (Test-OperationEnd $_.Exception) { throw }
    $failure = $_.Exception  # also Stop-Agent's AgentStopFailed, reported below with what followed
}
$undoErrors = @()
if ($null -ne $failure) { $undoErrors = Undo-Swap @($plan) }
# The agent is started again once the previous (or the new) version is whole; after an incomplete undo it
# would run a mix of both, so it stays stopped with its record: the next run puts the rest back from
# .iac-old (Restore-InterruptedSwap), then starts it.
$started = @()
if ($undoErrors.Count -eq 0) { $started = Start-Agent $folder }
$startFailed = @($started | Where-Object { $_.failed }).Count -gt 0
if ($null -ne $failure) {
    $first = Get-ErrorReport $failure
    if ($undoErrors.Count -gt 0) {
        $agent = 'nothing had to be stopped for it'
        if ($stopped.Count -gt 0) { $agent = "the agent ($(Get-AgentLabel $Spec)) was left stopped: it would run a mix of both versions" }
        Stop-Operation -Id 'SwapRollbackIncomplete' -Property 'runtime_path' -Message "installing $($Spec.archive_name) in $runtime failed: $($first.message) Putting the previous version back failed too: $($undoErrors -join '; '). The files not put back are in $old, which was kept; $agent. The next run puts them back, then starts what it stopped"
    }
    $cleanupErrors = @()
    try { [System.IO.File]::Delete((Get-SwapJournalPath $folder)) } catch { $cleanupErrors += (Get-ErrorReport $_.Exception).message }
    try { Remove-Tree $new } catch { $cleanupErrors += (Get-ErrorReport $_.Exception).message }
    if (-not (Remove-TreeBestEffort $old)) { $cleanupErrors += "$old is still held (the next run deletes it)" }
    # What the start did, as it happened: 'runs again' only when everything recorded runs.
    $agent = 'the previous version is in place'
    if ($startFailed) {
        $agent = "the previous version is in place, but starting the agent again failed: $(Get-StartReport $started)"
    } elseif (@($started | Where-Object { @('Started', 'running (started since)') -notcontains $_.outcome }).Count -gt 0) {
        $agent = "the previous version is in place; the agent: $(Get-StartReport $started)"
    } elseif ($started.Count -gt 0) {
        $agent = 'the previous version runs again'
    }
    $undone = 'Nothing in Runtime was changed'
    if ($swapBegun) { $undone = 'Every file was put back' }
    $message = "installing $($Spec.archive_name) in $runtime failed: $($first.message) $undone; $agent."
    if ($cleanupErrors.Count -gt 0) { $message += " Cleaning up failed too: $($cleanupErrors -join '; ')." }
    $id = 'SwapFailed'; $property = 'sha256'
    if ($first.id) { $id = $first.id; $property = $first.property }
    Stop-Operation -Id $id -Property $property -Message $message
}
# Committed. A start that failed is reported as a change, not as this resource's failure: the resources that
# depend on the archive (the settings files, the service, the site; components/production_agent.py) must
# still be written, the new version may need them to start, and AgentVerification reports the agent down.
# Its record stays: the next run starts it (or finds it started since by the WindowsService resource).
# What is left to clean up cannot fail the installation either (reported as a change).
$cleanupErrors = @()
try { [System.IO.File]::Delete((Get-SwapJournalPath $folder)) } catch { $cleanupErrors += (Get-ErrorReport $_.Exception).message }
[void](Remove-TreeBestEffort $new)  # what is left: keep_files of the archive, empty folders
$oldGone = Remove-TreeBestEffort $old
try { Remove-EmptyParents $runtime ([string[]]$obsolete) } catch { $cleanupErrors += (Get-ErrorReport $_.Exception).message }
try { [System.IO.File]::Delete($partial) } catch { $cleanupErrors += (Get-ErrorReport $_.Exception).message }

$changes += New-Change -Property 'sha256' -Before $before.sha256 -After $sha
$changes += New-Change -Property 'files' -Before @($previous).Count -After $files.Count
if ($before.ensure -eq 'present' -and -not $keptAsBefore) { $changes += New-Change -Property 'keep_files' -Before (@($before.kept_files) -join ', ') -After (@($Spec.keep_files) -join ', ') }
if ($obsolete.Count -gt 0) { $changes += New-Change -Property 'removed_files' -Before $obsolete.Count -After 0 }
foreach ($start in $started) { $changes += New-Change -Property $start.property -Before "$($start.name): stopped for the upgrade" -After $start.outcome }
if (-not $oldGone) { $changes += New-Change -Property 'work_folder' -Before $null -After "$old (still held by the exiting agent; the next run deletes it)" }
if ($cleanupErrors.Count -gt 0) { $changes += New-Change -Property 'cleanup' -Before $null -After "not finished (the next run finishes it): $($cleanupErrors -join '; ')" }
Complete-Operation -State (Get-ArchiveState $Spec) -Changed $true -Changes $changes
