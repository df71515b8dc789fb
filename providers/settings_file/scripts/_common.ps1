# Helpers shared by the SettingsFile scripts.
{% include '_accounts.ps1' %}
{% include '_dacl_lock.ps1' %}

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

{% include '_files.ps1' %}

# .NET only, no cmdlet: piping the hash bytes into ForEach-Object would have Module Logging record each
# bound value in event 4103 (about_Logging_Windows), and the hash of a file that embeds secrets can confirm
# a guessed secret.
function Get-Sha256Hex([byte[]] $Bytes) {
    $sha = [System.Security.Cryptography.SHA256]::Create()
    try { return [System.BitConverter]::ToString($sha.ComputeHash($Bytes)).Replace('-', '').ToLowerInvariant() } finally { $sha.Dispose() }
}

# -- Permissions of a file that holds secrets (readers given) ------------------------------------
# Protected (inheritance off, nothing of the folder's entries copied), full control for LocalSystem and
# the local Administrators, Read for each reader, no other entry, owned by the local Administrators: the
# manual's "other permissions should be denied" (agent-requirements) for the files that hold the client
# secrets and passwords. The owner counts as much as an entry: it may always read and change the DACL
# (learn.microsoft.com, "Owner of a New Object").
$KeptSids = @('S-1-5-18', 'S-1-5-32-544')
$OwnerSid = 'S-1-5-32-544'
$FullControlMask = [long]0xF01FF  # FullControl without Synchronize, which .NET adds to every allow entry
$ReadMask = [long]0x20089
# A reader's SID: given as a SID, a well-known English name, or a name Windows translates (throws otherwise).
function ConvertTo-ReaderSid([string] $Name) {
    return (ConvertTo-AccountSid $Name).Value
}

# set: a reader that does not resolve stops the operation with the fix.
function Resolve-ReaderSid([string] $Name) {
    try {
        return (ConvertTo-ReaderSid $Name)
    } catch {
        # Translate's IdentityNotMappedException arrives wrapped in a MethodInvocationException.
        $reason = $_.Exception
        while ($null -ne $reason.InnerException) { $reason = $reason.InnerException }
        Stop-Operation -Id 'IdentityNotMapped' -Category 'ObjectNotFound' -Property 'readers' -Message (
            "readers: '$Name': $($reason.Message) Create the account first (a built-in one: give its SID, S-1-...); for 'IIS AppPool\<pool>' " +
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
        try { $sid = ConvertTo-ReaderSid ([string]$name) } catch { $sid = $null }
        $sids.Add($sid)
    }
    return ,$sids.ToArray()
}

function Get-AccountName([System.Security.Principal.SecurityIdentifier] $Sid) {
    try { return $Sid.Translate([System.Security.Principal.NTAccount]).Value } catch { return $Sid.Value }
}

# The file's owner and DACL as Windows has them: protection, then every entry, explicit ones first. Both
# sections need READ_CONTROL only, which the owner always has (MS-DTYP 2.5.3.2): no SeSecurityPrivilege, and
# readable even when a hand-made DACL denies the Administrators the content.
function Get-FileAcl([string] $Path) {
    $sections = [System.Security.AccessControl.AccessControlSections]::Access -bor [System.Security.AccessControl.AccessControlSections]::Owner
    $security = (New-Object System.IO.FileInfo($Path)).GetAccessControl($sections)
    $entries = @()
    foreach ($rule in $security.GetAccessRules($true, $true, [System.Security.Principal.SecurityIdentifier])) {
        $entries += [ordered]@{
            sid = $rule.IdentityReference.Value
            name = (Get-AccountName $rule.IdentityReference)
            access = [string]$rule.AccessControlType
            mask = ([long][int]$rule.FileSystemRights) -band [long]4294967295
            inherited = [bool]$rule.IsInherited
        }
    }
    $owner = $security.GetOwner([System.Security.Principal.SecurityIdentifier])
    $ownerSid = $null
    $ownerName = $null
    if ($null -ne $owner) { $ownerSid = $owner.Value; $ownerName = (Get-AccountName $owner) }
    return [ordered]@{ protected = [bool]$security.AreAccessRulesProtected; owner = $ownerSid; owner_name = $ownerName; entries = @($entries) }
}

# Whether a file's owner and DACL are exactly the protected ones for these readers.
function Test-ProtectedAcl($Acl, [string[]] $ReaderSids) {
    if (-not $Acl.protected -or $Acl.owner -ne $OwnerSid) { return $false }
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

# The protected DACL alone (no owner section: SetAccessControl then writes the DACL only).
function New-ProtectedDacl([string[]] $ReaderSids) {
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

# The security descriptor a new file with secrets is created with: the protected DACL and the owner. An
# elevated administrator's token may name BUILTIN\Administrators as owner (TOKEN_OWNER: a group of the token
# with SE_GROUP_OWNER), so CreateFile accepts it.
function New-ProtectedFileSecurity([string[]] $ReaderSids) {
    $security = New-ProtectedDacl $ReaderSids
    $security.SetOwner((New-Object System.Security.Principal.SecurityIdentifier($OwnerSid)))
    return $security
}

# SetAccessControl persists only the sections that were modified (the SACL always stays). The DACL first, on
# its own: that needs WRITE_DAC, which the owner always has, whatever a hand-made DACL grants. Then the owner,
# when it differs: that needs WRITE_OWNER, which the DACL just written grants the Administrators. The caller
# holds the DACL lock (_dacl_lock.ps1), as FileAcl's writes do: a FileAcl pushing its entries down a folder
# above the file could otherwise write the file's old descriptor back over the protected one. The caller takes
# it once for the file and its backup, so one operation waits for it once (set.ps1).
function Set-ProtectedAcl([string] $Path, [string[]] $ReaderSids) {
    $file = New-Object System.IO.FileInfo($Path)
    $file.SetAccessControl((New-ProtectedDacl $ReaderSids))
    if ((Get-FileAcl $Path).owner -ne $OwnerSid) {
        $owner = New-Object System.Security.AccessControl.FileSecurity
        $owner.SetOwner((New-Object System.Security.Principal.SecurityIdentifier($OwnerSid)))
        $file.SetAccessControl($owner)
    }
}

function Format-Acl($Acl) {
    $lines = @()
    if ($null -ne $Acl.owner -and $Acl.owner -ne $OwnerSid) { $lines += ('owner: {0}' -f $Acl.owner_name) }
    if (-not $Acl.protected) { $lines += 'inherits the folder''s permissions' }
    foreach ($entry in $Acl.entries) {
        $origin = ''
        if ($entry.inherited) { $origin = ' (inherited)' }
        $lines += ('{0}: {1} 0x{2:X}{3}' -f $entry.name, $entry.access, (ConvertTo-ComparableMask $entry.mask), $origin)
    }
    return ,$lines
}

# The temporary files set.ps1 writes next to the target: '.<name>.<8 hex digits>.tmp' (New-TemporaryPath), and
# '.<name>.<32 hex digits>.tmp' from versions before the shorter name.
function Get-TemporaryFiles([string] $Path) {
    $folder = [System.IO.Path]::GetDirectoryName($Path)
    if (-not (Test-Path -LiteralPath $folder -PathType Container)) { return ,@() }
    $name = [System.IO.Path]::GetFileName($Path)
    $pattern = '^\.' + [regex]::Escape($name) + '\.([0-9a-f]{8}|[0-9a-f]{32})\.tmp$'
    # The wildcard is only a first filter (a three-letter extension pattern also matches longer ones in
    # .NET Framework); the regular expression decides.
    $found = @()
    foreach ($file in [System.IO.Directory]::GetFiles($folder, '.' + $name + '.*.tmp')) {
        if ([System.IO.Path]::GetFileName($file) -match $pattern) { $found += $file }
    }
    return ,$found
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
    # The permissions before the content: they need READ_CONTROL, which the owner always has; the content needs
    # FILE_READ_DATA, which a DACL hardened by hand (say 'IIS APPPOOL\<pool>: Read' alone) does not grant the
    # Administrators. Then the content is unknown, and the permissions say why.
    $acl = Get-FileAcl $Path
    try {
        $bytes = [System.IO.File]::ReadAllBytes($Path)
    } catch {
        $reason = $_.Exception
        while ($null -ne $reason.InnerException) { $reason = $reason.InnerException }
        if ($reason -isnot [System.UnauthorizedAccessException]) { throw }
        return [ordered]@{
            ensure = 'present'
            path = $Path
            content_readable = $false
            content = $null
            encoding = $null
            sha256 = $null
            size = $null
            backup_path = $backupPath
            acl = $acl
            backup_acl = $backupAcl
        }
    }
    $encodingName = Get-FileEncodingName $bytes
    return [ordered]@{
        ensure = 'present'
        path = $Path
        content_readable = $true
        content = (ConvertFrom-FileBytes $bytes $encodingName)
        encoding = $encodingName
        sha256 = (Get-Sha256Hex $bytes)
        size = $bytes.Length
        backup_path = $backupPath
        acl = $acl
        backup_acl = $backupAcl
    }
}
