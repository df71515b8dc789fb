param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_iis.ps1' %}
{% include '_staging.ps1' %}
{% include '_install.ps1' %}

# Installs the uploaded archive in Runtime:
# 1. checks the staging file against sha256 and every entry name, then extracts it into Runtime\.iac-new
#    (a failure here leaves the running version untouched);
# 2. stops the agent if a file it runs from is to be replaced or removed;
# 3. moves each replaced or obsolete file to Runtime\.iac-old and each new one into place (same volume:
#    renames, so each file keeps the permissions Runtime gives it), undoing every move on a failure;
# 4. records the new file list, deletes the old files and the staging file, starts the agent again.
# keep_files (the settings files the stack writes) are never taken from the archive nor removed.
$runtime = [string]$Spec.runtime_path
$sha = [string]$Spec.sha256
$folder = Get-StagingFolder $runtime
$before = Get-ArchiveState $Spec
if ($before.sha256 -eq $sha -and @($before.missing_files).Count -eq 0) {
    Complete-Operation -State $before
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

$changes = @()
if (-not [System.IO.Directory]::Exists($runtime)) {
    [void][System.IO.Directory]::CreateDirectory($runtime)
    $changes += New-Change -Property 'runtime_path' -Before $null -After $runtime
}
$new = [System.IO.Path]::Combine($runtime, $NewFolderName)
$old = [System.IO.Path]::Combine($runtime, $OldFolderName)
Remove-Tree $new  # left by an operation that was interrupted
Remove-Tree $old
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

$stopped = @()
if ($replaced.Count + $obsolete.Count -gt 0) { $stopped = Stop-Agent $Spec }
$moves = New-Object System.Collections.ArrayList
$failure = $null
try {
    foreach ($file in $replaced + $obsolete) {
        $aside = [System.IO.Path]::Combine($old, [string]$file)
        New-ParentFolder $aside
        Move-FileWithRetry ([System.IO.Path]::Combine($runtime, [string]$file)) $aside
        [void]$moves.Add(@([System.IO.Path]::Combine($runtime, [string]$file), $aside))
    }
    foreach ($file in $files) {
        $target = [System.IO.Path]::Combine($runtime, $file)
        New-ParentFolder $target
        Move-FileWithRetry ([System.IO.Path]::Combine($new, $file)) $target
        [void]$moves.Add(@([System.IO.Path]::Combine($new, $file), $target))
    }
    Write-Manifest $folder ([ordered]@{ sha256 = $sha; archive_name = [string]$Spec.archive_name; files = @($files) })
} catch {
    $failure = $_.Exception
}
if ($null -ne $failure) {
    # Every file back where it was, newest move first: the previous version is whole again.
    for ($index = $moves.Count - 1; $index -ge 0; $index--) {
        [System.IO.File]::Move($moves[$index][1], $moves[$index][0])
    }
    Remove-Tree $new
    Remove-Tree $old
    Start-Agent $Spec $stopped
    while ($null -ne $failure.InnerException) { $failure = $failure.InnerException }
    Stop-Operation -Id 'SwapFailed' -Property 'sha256' -Message "installing $($Spec.archive_name) in $runtime failed: $($failure.Message) Every file was put back; the previous version runs."
}
Remove-Tree $old
Remove-Tree $new  # what is left: keep_files of the archive, empty folders
Remove-EmptyParents $runtime ([string[]]$obsolete)
[System.IO.File]::Delete($partial)
Start-Agent $Spec $stopped

$changes += New-Change -Property 'sha256' -Before $before.sha256 -After $sha
$changes += New-Change -Property 'files' -Before @($previous).Count -After $files.Count
if ($obsolete.Count -gt 0) { $changes += New-Change -Property 'removed_files' -Before $obsolete.Count -After 0 }
foreach ($what in $stopped) { $changes += New-Change -Property "agent_$what" -Before 'Started' -After 'stopped for the upgrade, started again' }
Complete-Operation -State (Get-ArchiveState $Spec) -Changed $true -Changes $changes
