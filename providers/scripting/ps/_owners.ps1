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
# Only SYSTEM and Administrators can read or write these folders (_admin_folders.ps1, shared with the staging
# folders of the uploads): Users may create folders in %ProgramData%, and these records decide what gets deleted.

{% include '_mutex.ps1' %}
{% include '_files.ps1' %}
{% include '_admin_folders.ps1' %}

$OwnersMutexName = 'Global\UsercubeIac-Owners'
$OwnersLockWaitMs = 30000

function Get-OwnersFolder([string] $Kind, [string] $Key) {
    return [System.IO.Path]::Combine([Environment]::GetFolderPath('CommonApplicationData'), 'UsercubeIac', 'Owners', $Kind, $Key)
}

# The records folders' refusals: OwnersFolderUntrusted (no setting to name: the fix is on the host).
$OwnersFolderTrust = New-FolderTrust 'OwnersFolderUntrusted' 'ownership records folder' ''

function Initialize-OwnersFolder([string] $Folder) {
    # UsercubeIac, Owners, <kind> and <key>, each created admin-only or checked (_admin_folders.ps1): refused when
    # a reparse point or owned by an account not trusted; its DACL put back otherwise, and what others may have
    # put in it meanwhile (a record file of theirs, which would be read as one of ours) deleted.
    Initialize-TrustedFolder $Folder $OwnersFolderTrust
}

function Assert-OwnersFolder([string] $Folder) {
    # get and remove create nothing: an existing folder that is not safe is refused.
    Assert-TrustedFolder $Folder $OwnersFolderTrust
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
