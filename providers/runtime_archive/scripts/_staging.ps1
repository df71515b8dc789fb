# Helpers shared by the RuntimeArchive scripts: where the archive is staged and what is recorded of it.
#
# On the host, per Runtime folder, in a folder only SYSTEM and Administrators can read (the agent's own
# account has no business reading the archive, and Users may read %ProgramData% by default):
#   %ProgramData%\UsercubeIac\RuntimeArchive\<key>\upload-<sha256>.partial  the archive while it travels
#   %ProgramData%\UsercubeIac\RuntimeArchive\<key>\manifest.json            what was extracted into Runtime
#   %ProgramData%\UsercubeIac\RuntimeArchive\<key>\agent-stopped.json       what set/remove stopped, until started
#   %ProgramData%\UsercubeIac\RuntimeArchive\<key>\swap.json                a swap under way (what undoes it)
# <key> is the first 16 hex digits of the SHA-256 of the lower-cased Runtime path. In Runtime itself,
# only during an extraction: .iac-new (the new version, extracted) and .iac-old (the files it replaced).

$AdminSids = @('S-1-5-18', 'S-1-5-32-544')  # LocalSystem, BUILTIN\Administrators
$NewFolderName = '.iac-new'
$OldFolderName = '.iac-old'

function Get-HexText([byte[]] $Bytes) {
    return (-join ($Bytes | ForEach-Object { $_.ToString('x2') }))
}

function Get-StagingFolder([string] $RuntimePath) {
    $sha = [System.Security.Cryptography.SHA256]::Create()
    try { [byte[]] $digest = $sha.ComputeHash([System.Text.Encoding]::UTF8.GetBytes($RuntimePath.ToLowerInvariant())) } finally { $sha.Dispose() }
    $key = (Get-HexText $digest).Substring(0, 16)
    return [System.IO.Path]::Combine([Environment]::GetFolderPath('CommonApplicationData'), 'UsercubeIac', 'RuntimeArchive', $key)
}

function Get-PartialPath([string] $Folder, [string] $Sha256) {
    return [System.IO.Path]::Combine($Folder, "upload-$Sha256.partial")
}

function Get-AgentStoppedPath([string] $Folder) {
    return [System.IO.Path]::Combine($Folder, 'agent-stopped.json')
}

function Get-SwapJournalPath([string] $Folder) {
    return [System.IO.Path]::Combine($Folder, 'swap.json')
}

function Get-StreamSha256([System.IO.Stream] $Stream) {
    # Not Get-FileHash: a module function (autoloaded, its errors non-terminating).
    $sha = [System.Security.Cryptography.SHA256]::Create()
    try { return (Get-HexText $sha.ComputeHash($Stream)) } finally { $sha.Dispose() }
}

function Get-FileSha256([string] $Path) {
    $stream = [System.IO.FileStream]::new($Path, [System.IO.FileMode]::Open, [System.IO.FileAccess]::Read, [System.IO.FileShare]::Read)
    try { return (Get-StreamSha256 $stream) } finally { $stream.Dispose() }
}

function New-AdminOnlySecurity {
    # Owned by Administrators (an owner may always rewrite the DACL: WRITE_DAC), protected (no entry
    # inherited from %ProgramData%), SYSTEM and Administrators only, inherited by everything below.
    $security = New-Object System.Security.AccessControl.DirectorySecurity
    $security.SetOwner((New-Object System.Security.Principal.SecurityIdentifier 'S-1-5-32-544'))
    $security.SetAccessRuleProtection($true, $false)
    foreach ($sid in $AdminSids) {
        $identity = New-Object System.Security.Principal.SecurityIdentifier $sid
        $inheritance = [System.Security.AccessControl.InheritanceFlags]'ContainerInherit, ObjectInherit'
        $rule = New-Object System.Security.AccessControl.FileSystemAccessRule($identity, [System.Security.AccessControl.FileSystemRights]::FullControl, $inheritance, [System.Security.AccessControl.PropagationFlags]::None, [System.Security.AccessControl.AccessControlType]::Allow)
        $security.AddAccessRule($rule)
    }
    return $security
}

function Get-StagingFolders([string] $Folder) {
    # UsercubeIac, RuntimeArchive and <key>: each is checked, since Users may create folders in %ProgramData%
    # (one of them made by someone else first could be theirs to rewrite).
    $archive = [System.IO.Path]::GetDirectoryName($Folder)
    return @([System.IO.Path]::GetDirectoryName($archive), $archive, $Folder)
}

function Get-UntrustedReason([string] $Path) {
    # Why a staging folder is not safe to use, or $null: a reparse point (it could lead anywhere), an owner
    # other than SYSTEM or Administrators, a DACL that is not protected or grants anyone else.
    $info = New-Object System.IO.DirectoryInfo $Path
    if (($info.Attributes -band [System.IO.FileAttributes]::ReparsePoint) -ne 0) { return 'is a junction or symbolic link' }
    $acl = [System.IO.Directory]::GetAccessControl($Path)
    $owner = $acl.GetOwner([System.Security.Principal.SecurityIdentifier]).Value
    if ($AdminSids -notcontains $owner) { return "is owned by $owner, not by Administrators" }
    if (-not $acl.AreAccessRulesProtected) { return 'inherits permissions' }
    foreach ($rule in $acl.GetAccessRules($true, $true, [System.Security.Principal.SecurityIdentifier])) {
        if ($AdminSids -notcontains $rule.IdentityReference.Value) { return "grants $($rule.IdentityReference.Value) access" }
    }
    return $null
}

function Stop-Untrusted([string] $Path, [string] $Reason) {
    Stop-Operation -Id 'StagingFolderUntrusted' -Property 'runtime_path' -Message "the staging folder $Path $Reason; someone other than an administrator may have made or changed it: check it, delete it, then run again"
}

function Initialize-StagingFolder([string] $Folder) {
    # Created with owner and DACL in the same call (no moment with %ProgramData%'s inherited DACL). An existing
    # folder keeps what it has (CreateDirectory(path, security) does not touch it): it is checked; an
    # Administrators-owned one gets the DACL back, any other is refused.
    foreach ($path in (Get-StagingFolders $Folder)) {
        if (-not [System.IO.Directory]::Exists($path)) {
            [void][System.IO.Directory]::CreateDirectory($path, (New-AdminOnlySecurity))
            continue
        }
        $reason = Get-UntrustedReason $path
        if ($null -eq $reason) { continue }
        if ($reason.StartsWith('is ')) { Stop-Untrusted $path $reason }
        [System.IO.Directory]::SetAccessControl($path, (New-AdminOnlySecurity))
    }
}

function Assert-StagingFolder([string] $Folder) {
    # get and remove change nothing here: an existing folder that is not safe is refused.
    foreach ($path in (Get-StagingFolders $Folder)) {
        if (-not [System.IO.Directory]::Exists($path)) { return }
        $reason = Get-UntrustedReason $path
        if ($null -ne $reason) { Stop-Untrusted $path $reason }
    }
}

function Read-Manifest([string] $Folder) {
    $path = [System.IO.Path]::Combine($Folder, 'manifest.json')
    if (-not [System.IO.File]::Exists($path)) { return $null }
    return (ConvertTo-SpecObject ($JsonSerializer.DeserializeObject([System.IO.File]::ReadAllText($path))))
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
    $state = [ordered]@{ ensure = 'absent'; runtime_path = $runtime; sha256 = $null; archive_name = $null; file_count = 0; missing_files = @(); held_bytes = 0; held_sha256 = $null; interrupted = @() }
    # What a run that broke off left undone: drift, which the next set repairs.
    $record = Read-AgentStopped $folder
    if ($null -ne $record) {
        foreach ($name in @($record.pool, $record.service) + @($record.dependents)) { if ($name) { $state.interrupted += "agent stopped: $name" } }
    }
    if ([System.IO.File]::Exists((Get-SwapJournalPath $folder))) { $state.interrupted += 'swap not finished' }
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
    }
    $partial = Get-PartialPath $folder ([string]$Spec.sha256)
    if ([System.IO.File]::Exists($partial)) {
        $state.held_bytes = (New-Object System.IO.FileInfo $partial).Length
        $state.held_sha256 = Get-FileSha256 $partial
    }
    return $state
}
