# Who holds a shared object of this host, recorded on the host itself (included after prelude.ps1).
#
# Not only in the Pulumi state: a reply lost after the host acted means the state never learns what the
# operation did, and a retry then finds the object in place as if someone else had put it there. Two stacks
# (or two resources of one stack) holding the same object see each other's records here.
#
#   %ProgramData%\UsercubeIac\Owners\<kind>\<key>\owner-<32 hex digits of SHA-256(owner id)>.json
#       one per resource holding the object: { owner = its id, ... what it added }
#   %ProgramData%\UsercubeIac\Owners\<kind>\<key>\found.json
#       what the object was before the first owner came (it was there before: never removed; or what
#       was removed, to be put back when the last owner goes)
#
# Only SYSTEM and Administrators can read or write these folders (protected DACL, as the RuntimeArchive
# staging folders): Users may create folders in %ProgramData%, and these records decide what gets deleted.

{% include '_mutex.ps1' %}
{% include '_files.ps1' %}

$OwnersAdminSids = @('S-1-5-18', 'S-1-5-32-544')  # LocalSystem, BUILTIN\Administrators
$OwnersMutexName = 'Global\UsercubeIac-Owners'
$OwnersLockWaitMs = 30000

function Get-OwnersFolder([string] $Kind, [string] $Key) {
    return [System.IO.Path]::Combine([Environment]::GetFolderPath('CommonApplicationData'), 'UsercubeIac', 'Owners', $Kind, $Key)
}

function Get-OwnersFolderLevels([string] $Folder) {
    # UsercubeIac, Owners, <kind> and <key>: each is checked, since Users may create folders in %ProgramData%.
    $kind = [System.IO.Path]::GetDirectoryName($Folder)
    $owners = [System.IO.Path]::GetDirectoryName($kind)
    return @([System.IO.Path]::GetDirectoryName($owners), $owners, $kind, $Folder)
}

function New-OwnersFolderSecurity {
    # Owned by Administrators, protected (nothing inherited from %ProgramData%), SYSTEM and Administrators
    # full control, inherited by the record files.
    $security = New-Object System.Security.AccessControl.DirectorySecurity
    $security.SetOwner((New-Object System.Security.Principal.SecurityIdentifier 'S-1-5-32-544'))
    $security.SetAccessRuleProtection($true, $false)
    foreach ($sid in $OwnersAdminSids) {
        $identity = New-Object System.Security.Principal.SecurityIdentifier $sid
        $inheritance = [System.Security.AccessControl.InheritanceFlags]'ContainerInherit, ObjectInherit'
        $rule = New-Object System.Security.AccessControl.FileSystemAccessRule($identity, [System.Security.AccessControl.FileSystemRights]::FullControl, $inheritance, [System.Security.AccessControl.PropagationFlags]::None, [System.Security.AccessControl.AccessControlType]::Allow)
        $security.AddAccessRule($rule)
    }
    return $security
}

function Get-OwnersFolderUntrustedReason([string] $Path) {
    # Why a folder is not safe to trust, or $null: a reparse point, an owner other than SYSTEM or
    # Administrators, a DACL that is not protected or grants anyone else.
    $info = New-Object System.IO.DirectoryInfo $Path
    if (($info.Attributes -band [System.IO.FileAttributes]::ReparsePoint) -ne 0) { return 'is a junction or symbolic link' }
    $acl = [System.IO.Directory]::GetAccessControl($Path)
    $owner = $acl.GetOwner([System.Security.Principal.SecurityIdentifier]).Value
    if ($OwnersAdminSids -notcontains $owner) { return "is owned by $owner, not by Administrators" }
    if (-not $acl.AreAccessRulesProtected) { return 'inherits permissions' }
    foreach ($rule in $acl.GetAccessRules($true, $true, [System.Security.Principal.SecurityIdentifier])) {
        if ($OwnersAdminSids -notcontains $rule.IdentityReference.Value) { return "grants $($rule.IdentityReference.Value) access" }
    }
    return $null
}

function Stop-OwnersFolderUntrusted([string] $Path, [string] $Reason) {
    Stop-Operation -Id 'OwnersFolderUntrusted' -Message "the ownership records folder $Path $Reason; someone other than an administrator may have made or changed it: check it, delete it, then run again"
}

function Initialize-OwnersFolder([string] $Folder) {
    # Created with owner and DACL in the same call; an existing folder is checked, an Administrators-owned
    # one gets the DACL back, any other is refused. A folder made by another account between Exists and
    # CreateDirectory is returned by CreateDirectory as it is, without this security
    # (learn.microsoft.com, Directory.CreateDirectory(String, DirectorySecurity): "If the directory already
    # exists, this method does not create a new directory"), so every level is checked after creating it too.
    foreach ($path in (Get-OwnersFolderLevels $Folder)) {
        if (-not [System.IO.Directory]::Exists($path)) {
            [void][System.IO.Directory]::CreateDirectory($path, (New-OwnersFolderSecurity))
        }
        $reason = Get-OwnersFolderUntrustedReason $path
        if ($null -eq $reason) { continue }
        if ($reason.StartsWith('is ')) { Stop-OwnersFolderUntrusted $path $reason }
        [System.IO.Directory]::SetAccessControl($path, (New-OwnersFolderSecurity))
    }
}

function Assert-OwnersFolder([string] $Folder) {
    # get and remove create nothing: an existing folder that is not safe is refused.
    foreach ($path in (Get-OwnersFolderLevels $Folder)) {
        if (-not [System.IO.Directory]::Exists($path)) { return }
        $reason = Get-OwnersFolderUntrustedReason $path
        if ($null -ne $reason) { Stop-OwnersFolderUntrusted $path $reason }
    }
}

function Enter-OwnersLock {
    # One machine-wide named mutex around every ownership decision (_mutex.ps1): the operations of two stacks
    # run in different powershell.exe processes. Its DACL grants SYSTEM and the Administrators whoever
    # created it; a holder that hangs makes the others stop after 30 s (OwnersBusy) rather than hang too. An
    # abandoned mutex (its holder ended without releasing it) is the caller's then: every decision reads the
    # records again. Released by Exit-OwnersLock on the same thread, in a finally block.
    return (Enter-HostMutex -Name $OwnersMutexName -WaitMs $OwnersLockWaitMs -What 'ownership records' -DeniedId 'OwnersLockDenied' -BusyId 'OwnersBusy' -Property '' -Queued 'other operations on shared objects of this host were queued, or one is hung')
}

function Exit-OwnersLock($Mutex) {
    Exit-HostMutex $Mutex
}

function Get-OwnerRecordPath([string] $Folder, [string] $Owner) {
    $sha = [System.Security.Cryptography.SHA256]::Create()
    try { [byte[]] $digest = $sha.ComputeHash([System.Text.Encoding]::UTF8.GetBytes($Owner)) } finally { $sha.Dispose() }
    $hex = (-join ($digest | ForEach-Object { $_.ToString('x2') })).Substring(0, 32)
    return [System.IO.Path]::Combine($Folder, "owner-$hex.json")
}

function Get-FoundRecordPath([string] $Folder) {
    return [System.IO.Path]::Combine($Folder, 'found.json')
}

function Read-OwnersJson([string] $Path) {
    if (-not [System.IO.File]::Exists($Path)) { return $null }
    return (ConvertTo-SpecObject ($JsonSerializer.DeserializeObject([System.IO.File]::ReadAllText($Path))))
}

function Write-OwnersJson([string] $Path, $Value) {
    # Written next to its place and swapped in (Invoke-FileReplace, or Invoke-FileMove the first time): a
    # reader never sees half of it. Always with a backup name: without one, ReplaceFileW's error 1176 deletes
    # the record and leaves the new one under the temporary name (learn.microsoft.com, ReplaceFileW, Return
    # value); with one, Invoke-FileReplace retries 1175/1176 or moves the new record into place (1177).
    $temporary = "$Path.tmp"
    [System.IO.File]::WriteAllText($temporary, ($Value | ConvertTo-Json -Depth 8 -Compress), (New-Object System.Text.UTF8Encoding $false))
    if ([System.IO.File]::Exists($Path)) {
        $backup = New-TemporaryPath $Path  # a fresh name: a backup left by an earlier failure is never in the way
        Invoke-FileReplace -Source $temporary -Target $Path -Backup $backup
        Remove-FileQuietly $backup
    } else {
        Invoke-FileMove $temporary $Path
    }
}

function Read-OwnerRecords([string] $Folder) {
    # Every owner's record (each has .owner, its id).
    $records = New-Object System.Collections.Generic.List[object]
    if ([System.IO.Directory]::Exists($Folder)) {
        foreach ($file in [System.IO.Directory]::GetFiles($Folder, 'owner-*.json')) { $records.Add((Read-OwnersJson $file)) }
    }
    return ,$records.ToArray()
}

function Test-OwnersRecorded([string] $Folder) {
    # Something is recorded: an owner's record or found.json. An empty folder (a set refused after creating
    # it) or one holding only a temporary file is no record of anything.
    if (-not [System.IO.Directory]::Exists($Folder)) { return $false }
    if ([System.IO.Directory]::GetFiles($Folder, 'owner-*.json').Length -gt 0) { return $true }
    return [System.IO.File]::Exists((Get-FoundRecordPath $Folder))
}

function Remove-OwnersFolder([string] $Folder) {
    # The last owner went: its records go too (the <kind> and upper folders stay, for the next one).
    if ([System.IO.Directory]::Exists($Folder)) { [System.IO.Directory]::Delete($Folder, $true) }
}

function Remove-UnusedOwnersFolder([string] $Folder) {
    # A set that was refused or failed leaves no folder that records nothing.
    if (-not (Test-OwnersRecorded $Folder)) { Remove-OwnersFolder $Folder }
}
