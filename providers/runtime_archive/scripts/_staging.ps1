# Helpers shared by the RuntimeArchive scripts: where the archive is staged and what is recorded of it.
#
# On the host, per Runtime folder, in a folder only SYSTEM and Administrators can read (the agent's own
# account has no business reading the archive, and Users may read %ProgramData% by default):
#   %ProgramData%\UsercubeIac\RuntimeArchive\<key>\upload-<sha256>.partial  the archive while it travels
#   %ProgramData%\UsercubeIac\RuntimeArchive\<key>\manifest.json            what was extracted into Runtime
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

function Get-FileSha256([string] $Path) {
    return (Get-FileHash -LiteralPath $Path -Algorithm SHA256).Hash.ToLowerInvariant()
}

function New-AdminOnlySecurity {
    # Protected (no entry inherited from %ProgramData%), SYSTEM and Administrators only, inherited by
    # everything below.
    $security = New-Object System.Security.AccessControl.DirectorySecurity
    $security.SetAccessRuleProtection($true, $false)
    foreach ($sid in $AdminSids) {
        $identity = New-Object System.Security.Principal.SecurityIdentifier $sid
        $inheritance = [System.Security.AccessControl.InheritanceFlags]'ContainerInherit, ObjectInherit'
        $rule = New-Object System.Security.AccessControl.FileSystemAccessRule($identity, [System.Security.AccessControl.FileSystemRights]::FullControl, $inheritance, [System.Security.AccessControl.PropagationFlags]::None, [System.Security.AccessControl.AccessControlType]::Allow)
        $security.AddAccessRule($rule)
    }
    return $security
}

function Test-AdminOnly([string] $Path) {
    $acl = [System.IO.Directory]::GetAccessControl($Path)
    if (-not $acl.AreAccessRulesProtected) { return $false }
    foreach ($rule in $acl.GetAccessRules($true, $true, [System.Security.Principal.SecurityIdentifier])) {
        if ($AdminSids -notcontains $rule.IdentityReference.Value) { return $false }
    }
    return $true
}

function Initialize-StagingFolder([string] $Folder) {
    $root = [System.IO.Path]::GetDirectoryName($Folder)
    if (-not (Test-Path -LiteralPath $root -PathType Container)) {
        [void][System.IO.Directory]::CreateDirectory([System.IO.Path]::GetDirectoryName($root))
        # Created with its DACL in the same call: there is no moment at which it inherits %ProgramData%'s.
        [void][System.IO.Directory]::CreateDirectory($root, (New-AdminOnlySecurity))
    } elseif (-not (Test-AdminOnly $root)) {
        [System.IO.Directory]::SetAccessControl($root, (New-AdminOnlySecurity))
    }
    if (-not (Test-Path -LiteralPath $Folder -PathType Container)) { [void][System.IO.Directory]::CreateDirectory($Folder) }
}

function Read-Manifest([string] $Folder) {
    $path = [System.IO.Path]::Combine($Folder, 'manifest.json')
    if (-not [System.IO.File]::Exists($path)) { return $null }
    return (ConvertTo-SpecObject ($JsonSerializer.DeserializeObject([System.IO.File]::ReadAllText($path))))
}

function Write-Manifest([string] $Folder, $Manifest) {
    # Written next to its place and moved over it: a reader never sees half of it.
    $path = [System.IO.Path]::Combine($Folder, 'manifest.json')
    $temporary = "$path.tmp"
    [System.IO.File]::WriteAllText($temporary, ($Manifest | ConvertTo-Json -Depth 5 -Compress), (New-Object System.Text.UTF8Encoding $false))
    if ([System.IO.File]::Exists($path)) { [System.IO.File]::Delete($path) }
    [System.IO.File]::Move($temporary, $path)
}

function Get-ArchiveState($Spec) {
    $runtime = [string]$Spec.runtime_path
    $folder = Get-StagingFolder $runtime
    $state = [ordered]@{ ensure = 'absent'; runtime_path = $runtime; sha256 = $null; archive_name = $null; file_count = 0; missing_files = @(); held_bytes = 0; held_sha256 = $null }
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
