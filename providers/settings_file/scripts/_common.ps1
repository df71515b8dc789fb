# Helpers shared by the SettingsFile scripts.

function Get-FileEncodingName([byte[]] $Bytes) {
    if ($Bytes.Length -ge 3 -and $Bytes[0] -eq 0xEF -and $Bytes[1] -eq 0xBB -and $Bytes[2] -eq 0xBF) { return 'utf-8-bom' }
    if ($Bytes.Length -ge 2 -and $Bytes[0] -eq 0xFF -and $Bytes[1] -eq 0xFE) { return 'utf-16' }
    return 'utf-8'
}

# The leading comma returns the byte[] as one object: PowerShell unrolls a returned array, so
# without it empty content would reach the caller as $null and any content as an object[]
# (about_Return: "the array is unrolled"). '+' of two byte[] gives object[], hence the casts.
function ConvertTo-FileBytes([string] $Text, [string] $EncodingName) {
    $body = (New-Object System.Text.UTF8Encoding $false).GetBytes($Text)
    switch ($EncodingName) {
        'utf-8' { [byte[]] $bytes = $body }
        'utf-8-bom' { [byte[]] $bytes = [byte[]](0xEF, 0xBB, 0xBF) + $body }
        'utf-16' { [byte[]] $bytes = [byte[]](0xFF, 0xFE) + [System.Text.Encoding]::Unicode.GetBytes($Text) }
        default { Stop-Operation -Id 'UnknownEncoding' -Property 'encoding' -Message "unknown encoding '$EncodingName'" }
    }
    return , $bytes
}

function ConvertFrom-FileBytes([byte[]] $Bytes, [string] $EncodingName) {
    switch ($EncodingName) {
        'utf-8-bom' { return (New-Object System.Text.UTF8Encoding $false).GetString($Bytes, 3, $Bytes.Length - 3) }
        'utf-16' { return [System.Text.Encoding]::Unicode.GetString($Bytes, 2, $Bytes.Length - 2) }
        default { return (New-Object System.Text.UTF8Encoding $false).GetString($Bytes) }
    }
}

# File.Replace is ReplaceFileW, which can fail half-way (learn.microsoft.com, ReplaceFileW, "Return
# value"): 1175 ERROR_UNABLE_TO_REMOVE_REPLACED leaves both files under their names; 1176
# ERROR_UNABLE_TO_MOVE_REPLACEMENT without a backup name leaves the replaced file gone and the new
# content under the temporary name; 1177 ERROR_UNABLE_TO_MOVE_REPLACEMENT_2 leaves the replaced file
# under another name. When the target is gone the new content is moved into place, so the file is
# never lost. Access denied and sharing violations from antivirus, indexers or file watchers are
# transient and retried (as LLVM's sys::fs rename does for ReplaceFileW).
function Invoke-FileReplace([string] $Source, [string] $Target, $Backup) {
    $attempt = 0
    while ($true) {
        $attempt++
        try {
            [System.IO.File]::Replace($Source, $Target, $Backup)
            return
        } catch {
            if ((Test-Path -LiteralPath $Source -PathType Leaf) -and -not (Test-Path -LiteralPath $Target)) {
                [System.IO.File]::Move($Source, $Target)
                return
            }
            $reason = $_.Exception
            while ($null -ne $reason.InnerException) { $reason = $reason.InnerException }
            $code = $reason.HResult -band 0xFFFF
            if ($attempt -ge 5 -or @(5, 32, 33, 1175) -notcontains $code) { throw }
            Start-Sleep -Milliseconds (100 * $attempt)
        }
    }
}

function Get-Sha256Hex([byte[]] $Bytes) {
    $sha = [System.Security.Cryptography.SHA256]::Create()
    try { return (-join ($sha.ComputeHash($Bytes) | ForEach-Object { $_.ToString('x2') })) } finally { $sha.Dispose() }
}

# -- Permissions of a file that holds secrets (readers given) ------------------------------------
# Protected (inheritance off, nothing of the folder's entries copied), full control for LocalSystem and
# the local Administrators, Read for each reader, no other entry: the manual's "other permissions should
# be denied" (agent-requirements) for the files that hold the client secrets and passwords.
$KeptSids = @('S-1-5-18', 'S-1-5-32-544')
$FullControlMask = [long]0xF01FF  # FullControl without Synchronize, which .NET adds to every allow entry
$ReadMask = [long]0x20089
$GenericFileRights = @(
    @([long]2147483648, 0x120089),
    @([long]1073741824, 0x120116),
    @([long]536870912, 0x1200A0),
    @([long]268435456, 0x1F01FF)
)

# Generic bits mapped as Windows maps them for files, Synchronize dropped: a mask as it compares.
function ConvertTo-ComparableMask([long] $Mask) {
    $value = $Mask -band [long]4294967295
    foreach ($pair in $GenericFileRights) {
        if ($value -band $pair[0]) { $value = ($value -band (-bnot $pair[0])) -bor $pair[1] }
    }
    return ($value -band (-bnot [long]0x100000))
}

# set: a reader that does not resolve stops the operation with the fix.
function Resolve-ReaderSid([string] $Name) {
    try {
        if ($Name -match '^S-1-') { return (New-Object System.Security.Principal.SecurityIdentifier($Name)).Value }
        return (New-Object System.Security.Principal.NTAccount($Name)).Translate([System.Security.Principal.SecurityIdentifier]).Value
    } catch {
        # Translate's IdentityNotMappedException arrives wrapped in a MethodInvocationException.
        $reason = $_.Exception
        while ($null -ne $reason.InnerException) { $reason = $reason.InnerException }
        Stop-Operation -Id 'IdentityNotMapped' -Category 'ObjectNotFound' -Property 'readers' -Message (
            "readers: '$Name': $($reason.Message) Create the account first; for 'IIS AppPool\<pool>' " +
            'the application pool must exist (make this resource depend on it).')
    }
}

# get: the SID of each declared reader, $null for one that does not resolve (get must not fail on it);
# $null when the file's permissions are not managed.
function Get-DeclaredReaderSids($Spec) {
    if ($null -eq $Spec.readers) { return $null }
    $sids = New-Object System.Collections.Generic.List[object]
    foreach ($name in @($Spec.readers)) {
        $sid = $null
        try {
            if ([string]$name -match '^S-1-') { $sid = (New-Object System.Security.Principal.SecurityIdentifier([string]$name)).Value }
            else { $sid = (New-Object System.Security.Principal.NTAccount([string]$name)).Translate([System.Security.Principal.SecurityIdentifier]).Value }
        } catch { $sid = $null }
        $sids.Add($sid)
    }
    return ,$sids.ToArray()
}

# The file's DACL as Windows has it: protection, then every entry, explicit ones first (GetAccessControl
# reads the Access section only: no SeSecurityPrivilege needed).
function Get-FileAcl([string] $Path) {
    $security = (New-Object System.IO.FileInfo($Path)).GetAccessControl([System.Security.AccessControl.AccessControlSections]::Access)
    $entries = @()
    foreach ($rule in $security.GetAccessRules($true, $true, [System.Security.Principal.SecurityIdentifier])) {
        $sid = $rule.IdentityReference.Value
        $name = $sid
        try { $name = $rule.IdentityReference.Translate([System.Security.Principal.NTAccount]).Value } catch { $name = $sid }
        $entries += [ordered]@{
            sid = $sid
            name = $name
            access = [string]$rule.AccessControlType
            mask = ([long][int]$rule.FileSystemRights) -band [long]4294967295
            inherited = [bool]$rule.IsInherited
        }
    }
    return [ordered]@{ protected = [bool]$security.AreAccessRulesProtected; entries = @($entries) }
}

# Whether a DACL is exactly the protected one for these readers.
function Test-ProtectedAcl($Acl, [string[]] $ReaderSids) {
    if (-not $Acl.protected) { return $false }
    $expected = @{}
    foreach ($sid in $KeptSids) { $expected[$sid] = $FullControlMask }
    foreach ($sid in $ReaderSids) { if (-not $expected.ContainsKey($sid)) { $expected[$sid] = $ReadMask } }
    $seen = @{}
    foreach ($entry in $Acl.entries) {
        if ($entry.inherited -or $entry.access -ne 'Allow' -or -not $expected.ContainsKey($entry.sid)) { return $false }
        if ($seen.ContainsKey($entry.sid) -or (ConvertTo-ComparableMask $entry.mask) -ne $expected[$entry.sid]) { return $false }
        $seen[$entry.sid] = $true
    }
    return ($seen.Count -eq $expected.Count)
}

function New-ProtectedFileSecurity([string[]] $ReaderSids) {
    $security = New-Object System.Security.AccessControl.FileSecurity
    # Inheritance off, and the inherited entries not copied: nothing of the folder's (BUILTIN\Users...) stays.
    $security.SetAccessRuleProtection($true, $false)
    $allow = [System.Security.AccessControl.AccessControlType]::Allow
    foreach ($sid in $KeptSids) {
        $security.AddAccessRule((New-Object System.Security.AccessControl.FileSystemAccessRule(
            (New-Object System.Security.Principal.SecurityIdentifier($sid)), [System.Security.AccessControl.FileSystemRights]::FullControl, $allow)))
    }
    foreach ($sid in $ReaderSids) {
        if ($KeptSids -contains $sid) { continue }
        $security.AddAccessRule((New-Object System.Security.AccessControl.FileSystemAccessRule(
            (New-Object System.Security.Principal.SecurityIdentifier($sid)), [System.Security.AccessControl.FileSystemRights]::Read, $allow)))
    }
    return $security
}

# SetAccessControl persists only the sections that were modified: the DACL and its protection. Owner
# and SACL stay as they are.
function Set-ProtectedAcl([string] $Path, [string[]] $ReaderSids) {
    (New-Object System.IO.FileInfo($Path)).SetAccessControl((New-ProtectedFileSecurity $ReaderSids))
}

function Format-Acl($Acl) {
    $lines = @()
    if (-not $Acl.protected) { $lines += 'inherits the folder''s permissions' }
    foreach ($entry in $Acl.entries) {
        $origin = ''
        if ($entry.inherited) { $origin = ' (inherited)' }
        $lines += ('{0}: {1} 0x{2:X}{3}' -f $entry.name, $entry.access, (ConvertTo-ComparableMask $entry.mask), $origin)
    }
    return ,$lines
}

# The temporary files set.ps1 writes next to the target: '.<name>.<32 hex digits>.tmp'.
function Get-TemporaryFiles([string] $Path) {
    $folder = [System.IO.Path]::GetDirectoryName($Path)
    if (-not (Test-Path -LiteralPath $folder -PathType Container)) { return ,@() }
    $name = [System.IO.Path]::GetFileName($Path)
    $pattern = '^\.' + [regex]::Escape($name) + '\.[0-9a-f]{32}\.tmp$'
    # The wildcard is only a first filter (a three-letter extension pattern also matches longer ones in
    # .NET Framework); the regular expression decides.
    return ,@([System.IO.Directory]::GetFiles($folder, '.' + $name + '.*.tmp') | Where-Object { [System.IO.Path]::GetFileName($_) -match $pattern })
}

function Get-SettingsFileState([string] $Path) {
    $backup = "$Path.bak"
    $backupPath = $null
    $backupAcl = $null
    if (Test-Path -LiteralPath $backup -PathType Leaf) {
        $backupPath = $backup
        $backupAcl = Get-FileAcl $backup
    }
    if (-not (Test-Path -LiteralPath $Path -PathType Leaf)) {
        if (Test-Path -LiteralPath $Path) {
            Stop-Operation -Id 'PathIsNotAFile' -Property 'path' -Message "'$Path' exists and is not a file"
        }
        return [ordered]@{ ensure = 'absent'; path = $Path; backup_path = $backupPath; backup_acl = $backupAcl }
    }
    $bytes = [System.IO.File]::ReadAllBytes($Path)
    $encodingName = Get-FileEncodingName $bytes
    return [ordered]@{
        ensure = 'present'
        path = $Path
        content = (ConvertFrom-FileBytes $bytes $encodingName)
        encoding = $encodingName
        sha256 = (Get-Sha256Hex $bytes)
        size = $bytes.Length
        backup_path = $backupPath
        acl = (Get-FileAcl $Path)
        backup_acl = $backupAcl
    }
}
