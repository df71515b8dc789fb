param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_iis.ps1' %}
{% include '_staging.ps1' %}
{% include '_install.ps1' %}

# Installs the uploaded archive in Runtime:
# 0. finishes what an interrupted run left: undoes a swap it did not commit (swap.json), starts the agent it
#    stopped (agent-stopped.json; unless it is gone, runs, or was stopped on purpose since: see Start-Agent),
#    removes its work folders;
# 1. checks the staging file against sha256 and every entry name, then extracts it into Runtime\.iac-new
#    (a failure here leaves the running version untouched);
# 2. stops the agent if a file it runs from is to be replaced or removed;
# 3. moves each replaced or obsolete file to Runtime\.iac-old and each new one into place (same volume:
#    renames, so each file keeps the permissions Runtime gives it), undoing every move on a failure;
# 4. records the new file list (the commit), starts the agent again, then deletes the old files (best
#    effort: an exiting worker may still map them) and the staging file.
# keep_files (the settings files the stack writes) are never taken from the archive nor removed.
$runtime = [string]$Spec.runtime_path
$sha = [string]$Spec.sha256
$folder = Get-StagingFolder $runtime
Initialize-StagingFolder $folder
$new = [System.IO.Path]::Combine($runtime, $NewFolderName)
$old = [System.IO.Path]::Combine($runtime, $OldFolderName)
$recovered = @()
if ([System.IO.File]::Exists((Get-SwapJournalPath $folder))) {
    Restore-InterruptedSwap $runtime $folder
    $recovered += New-Change -Property 'interrupted_swap' -Before 'pending' -After 'finished'
}
foreach ($start in (Start-Agent $folder)) { $recovered += New-Change -Property $start.property -Before "$($start.name): stopped by an interrupted run" -After $start.outcome }
$before = Get-ArchiveState $Spec
if ($before.sha256 -eq $sha -and @($before.missing_files).Count -eq 0) {
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

Add-Type -AssemblyName System.IO.Compression.FileSystem
$keep = New-PathSet
foreach ($file in @($Spec.keep_files)) { [void]$keep.Add([string]$file) }
$files = @((Get-ArchiveFileList $partial $runtime) | Where-Object { -not $keep.Contains($_) })
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
# No swap journal is left here (undone above): these hold nothing but copies and leftovers.
Remove-Tree $new
if (-not (Remove-TreeBestEffort $old)) {
    Stop-Operation -Id 'WorkFolderBusy' -Property 'runtime_path' -Message "$old, left by the previous installation, cannot be deleted yet (a program still holds a file in it); nothing was changed: run again in a minute"
}
# ExtractToDirectory refuses to overwrite (IOException for a file that exists): $new is always new.
$failure = $null
try {
    [System.IO.Compression.ZipFile]::ExtractToDirectory($partial, $new)
} catch {
    $failure = $_.Exception
}
if ($null -ne $failure) {
    while ($null -ne $failure.InnerException) { $failure = $failure.InnerException }
    Remove-Tree $new
    Stop-Operation -Id 'ExtractionFailed' -Property 'sha256' -Message "extracting $($Spec.archive_name) failed: $($failure.Message) The version in $runtime was not touched and still runs."
}

$plan = New-Object System.Collections.ArrayList
foreach ($file in $replaced + $obsolete) { [void]$plan.Add(@([System.IO.Path]::Combine($runtime, [string]$file), [System.IO.Path]::Combine($old, [string]$file))) }
foreach ($file in $files) { [void]$plan.Add(@([System.IO.Path]::Combine($new, $file), [System.IO.Path]::Combine($runtime, $file))) }
$stopped = @()
$failure = $null
$undoErrors = @()
try {
    if ($replaced.Count + $obsolete.Count -gt 0) { $stopped = Stop-Agent $Spec $folder }
    # The journal before the first move: a run that breaks in the middle leaves what undoes it.
    Write-JsonFile (Get-SwapJournalPath $folder) ([ordered]@{ sha256 = $sha; moves = @($plan) })
    try {
        foreach ($move in $plan) {
            New-ParentFolder $move[1]
            Move-FileWithRetry $move[0] $move[1]
        }
        Write-Manifest $folder ([ordered]@{ sha256 = $sha; archive_name = [string]$Spec.archive_name; files = @($files) })
    } catch {
        if (Test-OperationEnd $_.Exception) { throw }
        $failure = $_.Exception
    }
    if ($null -ne $failure) {
        $undoErrors = Undo-Swap @($plan)
    }
} finally {
    # Whatever happened above, what was stopped runs again (the record says what).
    [void](Start-Agent $folder)
}
if ($null -ne $failure) {
    while ($null -ne $failure.InnerException) { $failure = $failure.InnerException }
    if ($undoErrors.Count -gt 0) {
        Stop-Operation -Id 'SwapRollbackIncomplete' -Property 'runtime_path' -Message "installing $($Spec.archive_name) in $runtime failed: $($failure.Message) Putting the previous version back failed too: $($undoErrors -join '; '). The files not put back are in $old, which was kept; the next run tries again"
    }
    [System.IO.File]::Delete((Get-SwapJournalPath $folder))
    Remove-Tree $new
    [void](Remove-TreeBestEffort $old)
    Stop-Operation -Id 'SwapFailed' -Property 'sha256' -Message "installing $($Spec.archive_name) in $runtime failed: $($failure.Message) Every file was put back; the previous version runs."
}
[System.IO.File]::Delete((Get-SwapJournalPath $folder))
[void](Remove-TreeBestEffort $new)  # what is left: keep_files of the archive, empty folders
$oldGone = Remove-TreeBestEffort $old
Remove-EmptyParents $runtime ([string[]]$obsolete)
[System.IO.File]::Delete($partial)

$changes += New-Change -Property 'sha256' -Before $before.sha256 -After $sha
$changes += New-Change -Property 'files' -Before @($previous).Count -After $files.Count
if ($obsolete.Count -gt 0) { $changes += New-Change -Property 'removed_files' -Before $obsolete.Count -After 0 }
foreach ($what in $stopped) { $changes += New-Change -Property "agent_$what" -Before 'Started' -After 'stopped for the upgrade, started again' }
if (-not $oldGone) { $changes += New-Change -Property 'work_folder' -Before $null -After "$old (still held by the exiting agent; the next run deletes it)" }
Complete-Operation -State (Get-ArchiveState $Spec) -Changed $true -Changes $changes
