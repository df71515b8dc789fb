# Helpers of the scripts that receive a file in chunks (HostingBundle, RuntimeArchive; the Python side is
# providers/framework/upload.py): the staging folders only SYSTEM and Administrators can use, the file while it
# travels, SHA-256. Included by each resource's own staging include, which says where its folder is.
#
# Every staging folder lies under %ProgramData%\UsercubeIac. Users may create folders in %ProgramData% (its default
# DACL gives BUILTIN\Users create-folders and create-files, and CREATOR OWNER full control), so any level from
# UsercubeIac down may have been made by someone else first. Its owner may always rewrite its DACL (WRITE_DAC), and
# whoever may delete children of a folder (FILE_DELETE_CHILD) may rename the level below away and put their own in
# its place, between the hash check of a file and its use. So each level, UsercubeIac included, is created owned by
# Administrators with a protected SYSTEM/Administrators DACL, or checked when it exists: refused when it is a
# reparse point or owned by anyone else, its DACL put back when only the DACL is wrong.

$AdminSids = @('S-1-5-18', 'S-1-5-32-544')  # LocalSystem, BUILTIN\Administrators

function Get-HexText([byte[]] $Bytes) {
    return (-join ($Bytes | ForEach-Object { $_.ToString('x2') }))
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

function Get-PartialPath([string] $Folder, [string] $Sha256) {
    return [System.IO.Path]::Combine($Folder, "upload-$Sha256.partial")
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
    # %ProgramData%\UsercubeIac and each folder below it down to $Folder, outermost first: each is checked.
    $top = [System.IO.Path]::Combine([Environment]::GetFolderPath('CommonApplicationData'), 'UsercubeIac')
    $levels = New-Object 'System.Collections.Generic.List[string]'
    for ($path = $Folder; $path.Length -gt $top.Length; $path = [System.IO.Path]::GetDirectoryName($path)) {
        $levels.Insert(0, $path)
    }
    $levels.Insert(0, $top)
    return , $levels.ToArray()
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

function Stop-Untrusted([string] $Path, [string] $Reason, [string] $Property) {
    Stop-Operation -Id 'StagingFolderUntrusted' -Property $Property -Message "the staging folder $Path $Reason; someone other than an administrator may have made or changed it: check it, delete it, then run again"
}

function Initialize-AdminOnlyFolder([string] $Folder, [string] $Property) {
    # Created with owner and DACL in the same call (no moment with %ProgramData%'s inherited DACL). An existing
    # folder keeps what it has (CreateDirectory(path, security) does not touch it): it is checked; an
    # Administrators-owned one gets the DACL back, any other is refused ($Property: the setting errors name).
    foreach ($path in (Get-StagingFolders $Folder)) {
        if (-not [System.IO.Directory]::Exists($path)) {
            [void][System.IO.Directory]::CreateDirectory($path, (New-AdminOnlySecurity))
            continue
        }
        $reason = Get-UntrustedReason $path
        if ($null -eq $reason) { continue }
        if ($reason.StartsWith('is ')) { Stop-Untrusted $path $reason $Property }
        [System.IO.Directory]::SetAccessControl($path, (New-AdminOnlySecurity))
    }
}

function Assert-AdminOnlyFolder([string] $Folder, [string] $Property) {
    # For scripts that change nothing here: an existing folder that is not safe is refused.
    foreach ($path in (Get-StagingFolders $Folder)) {
        if (-not [System.IO.Directory]::Exists($path)) { return }
        $reason = Get-UntrustedReason $path
        if ($null -ne $reason) { Stop-Untrusted $path $reason $Property }
    }
}
