# Helpers shared by the RuntimeArchive scripts: where the archive is staged and what is recorded of it.
#
# On the host, per Runtime folder, in a folder only SYSTEM and Administrators can read (the agent's own
# account has no business reading the archive, and Users may read %ProgramData% by default):
#   %ProgramData%\UsercubeIac\RuntimeArchive\<key>\upload-<sha256>.partial  the archive while it travels
#   %ProgramData%\UsercubeIac\RuntimeArchive\<key>\manifest.json            what was extracted into Runtime, and kept
#   %ProgramData%\UsercubeIac\RuntimeArchive\<key>\agent-stopped.json       what set/remove stopped, until started
#   %ProgramData%\UsercubeIac\RuntimeArchive\<key>\swap.json                a swap under way (what undoes it)
# <key> is the first 16 hex digits of the SHA-256 of the lower-cased Runtime path. In Runtime itself,
# only during an extraction: .iac-new (the new version, extracted) and .iac-old (the files it replaced).
# The folders' protection, the partial file and SHA-256: the shared upload helpers (scripting/ps/_upload.ps1).
{% include '_upload.ps1' %}

$NewFolderName = '.iac-new'
$OldFolderName = '.iac-old'

function Get-StagingFolder([string] $RuntimePath) {
    $sha = [System.Security.Cryptography.SHA256]::Create()
    try { [byte[]] $digest = $sha.ComputeHash([System.Text.Encoding]::UTF8.GetBytes($RuntimePath.ToLowerInvariant())) } finally { $sha.Dispose() }
    $key = (Get-HexText $digest).Substring(0, 16)
    return [System.IO.Path]::Combine([Environment]::GetFolderPath('CommonApplicationData'), 'UsercubeIac', 'RuntimeArchive', $key)
}

function Get-AgentStoppedPath([string] $Folder) {
    return [System.IO.Path]::Combine($Folder, 'agent-stopped.json')
}

function Get-SwapJournalPath([string] $Folder) {
    return [System.IO.Path]::Combine($Folder, 'swap.json')
}

function Initialize-StagingFolder([string] $Folder) {
    # UsercubeIac, RuntimeArchive and <key>: created admin-only, or checked (refused or their DACL put back).
    Initialize-AdminOnlyFolder $Folder 'runtime_path'
}

function Assert-StagingFolder([string] $Folder) {
    # remove changes nothing here: an existing folder that is not safe is refused.
    Assert-AdminOnlyFolder $Folder 'runtime_path'
}

function Read-Manifest([string] $Folder) {
    $path = [System.IO.Path]::Combine($Folder, 'manifest.json')
    if (-not [System.IO.File]::Exists($path)) { return $null }
    return (ConvertTo-SpecObject ($JsonSerializer.DeserializeObject([System.IO.File]::ReadAllText($path))))
}

# The files a manifest written before it recorded keep_files was installed with: the resource's default then.
$FormerDefaultKeptFiles = @('web.config', 'appsettings.json', 'appsettings.agent.json')

function Get-KeptFiles($Manifest) {
    # The files the installation a manifest records kept (never taken from the archive). (Under StrictMode a missing
    # property throws: looked up in PSObject.Properties.)
    if ($null -eq $Manifest.PSObject.Properties['keep_files']) { return ,@($FormerDefaultKeptFiles) }
    return ,@($Manifest.keep_files | ForEach-Object { [string]$_ })
}

function Write-Manifest([string] $Folder, $Manifest) {
    Write-JsonFile ([System.IO.Path]::Combine($Folder, 'manifest.json')) $Manifest
}

function Write-JsonFile([string] $Path, $Value) {
    # Written next to its place and swapped in: a reader never sees half of it.
    $temporary = "$Path.tmp"
    [System.IO.File]::WriteAllText($temporary, ($Value | ConvertTo-Json -Depth 5 -Compress), (New-Object System.Text.UTF8Encoding $false))
    # File.Replace swaps it in in one step (learn.microsoft.com File.Replace); the first time there is nothing to replace.
    # No backup: [NullString]::Value, because PowerShell passes $null to a .NET string parameter as '' (PowerShell/
    # PowerShell#11515), and File.Replace refuses '' as a path ("The path is not of a legal form").
    if ([System.IO.File]::Exists($Path)) { [System.IO.File]::Replace($temporary, $Path, [NullString]::Value) } else { [System.IO.File]::Move($temporary, $Path) }
}

function Read-AgentStopped([string] $Folder) {
    $path = Get-AgentStoppedPath $Folder
    if (-not [System.IO.File]::Exists($path)) { return $null }
    return (ConvertTo-SpecObject ($JsonSerializer.DeserializeObject([System.IO.File]::ReadAllText($path))))
}

function Get-ArchiveState($Spec) {
    $runtime = [string]$Spec.runtime_path
    $folder = Get-StagingFolder $runtime
    $state = [ordered]@{ ensure = 'absent'; runtime_path = $runtime; sha256 = $null; archive_name = $null; file_count = 0; missing_files = @(); kept_files = @(); held_bytes = 0; held_sha256 = $null; interrupted = @() }
    # A staging level set would refuse is refused; one whose DACL set puts back (an earlier version's folder, one
    # others were let into) is drift, which the next set repairs: get changes nothing, and a refresh still works.
    # What it holds is not counted as uploaded (set deletes what others may have put there).
    $repair = Get-StagingRepair $folder 'runtime_path'
    if ($null -ne $repair) { $state.interrupted += "staging folder to repair: $repair" }
    # What a run that broke off left undone: drift, which the next set repairs.
    $record = Read-AgentStopped $folder
    if ($null -ne $record) {
        foreach ($name in @($record.pool, $record.service) + @($record.dependents)) { if ($name) { $state.interrupted += "agent stopped: $name" } }
    }
    if ([System.IO.File]::Exists((Get-SwapJournalPath $folder))) { $state.interrupted += 'swap not finished' }
    # A work folder a run could not delete (an exiting worker's images) or left when it broke off.
    foreach ($work in @($NewFolderName, $OldFolderName)) {
        $path = [System.IO.Path]::Combine($runtime, $work)
        if ([System.IO.Directory]::Exists($path)) { $state.interrupted += "work folder left: $path" }
    }
    $manifest = Read-Manifest $folder
    if ($null -ne $manifest) {
        $missing = New-Object 'System.Collections.Generic.List[string]'
        foreach ($file in @($manifest.files)) {
            if (-not [System.IO.File]::Exists([System.IO.Path]::Combine($runtime, [string]$file))) { $missing.Add([string]$file) }
        }
        $state.ensure = 'present'
        $state.sha256 = [string]$manifest.sha256
        $state.archive_name = [string]$manifest.archive_name
        $state.file_count = @($manifest.files).Count
        $state.missing_files = @($missing | Select-Object -First 20)
        $state.kept_files = Get-KeptFiles $manifest
    }
    $partial = Get-PartialPath $folder ([string]$Spec.sha256)
    if ($null -eq $repair -and [System.IO.File]::Exists($partial)) {
        $state.held_bytes = (New-Object System.IO.FileInfo $partial).Length
        $state.held_sha256 = Get-FileSha256 $partial
    }
    return $state
}
