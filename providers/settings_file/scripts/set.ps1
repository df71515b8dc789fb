param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_common.ps1' %}

$path = [string]$Spec.path
# $null: the file's permissions are not managed (it takes its folder's). A list, even empty: protected.
$readerSids = $null
if ($null -ne $Spec.readers) { $readerSids = @(foreach ($name in @($Spec.readers)) { Resolve-ReaderSid ([string]$name) }) }
$before = Get-SettingsFileState $path
[byte[]] $desired = ConvertTo-FileBytes ([string]$Spec.content) ([string]$Spec.encoding)
$desiredHash = Get-Sha256Hex $desired

$present = ($before.ensure -eq 'present')
$previousHash = $null  # (an absent file's state has no sha256 key)
if ($present) { $previousHash = $before.sha256 }
$contentOk = ($present -and $before.content_readable -and $previousHash -eq $desiredHash)
$aclOk = ($null -eq $readerSids) -or (-not $present) -or (Test-ProtectedAcl $before.acl $readerSids)
$backupAclOk = ($null -eq $readerSids) -or ($null -eq $before.backup_path) -or (Test-ProtectedAcl $before.backup_acl $readerSids)
if ($contentOk -and $aclOk -and $backupAclOk) {
    $before.reader_sids = $readerSids
    Complete-Operation -State $before
}
if ($present -and -not $before.content_readable -and $null -eq $readerSids) {
    Stop-Operation -Id 'ContentUnreadable' -Category 'PermissionDenied' -Property 'readers' -Message (
        "'$path': its permissions do not let the Administrators read it, and this resource does not manage them " +
        "(no readers). Declare readers to have them set, or grant BUILTIN\Administrators Full control by hand " +
        "(icacls `"$path`" /grant *S-1-5-32-544:F).")
}

$folder = [System.IO.Path]::GetDirectoryName($path)
$changes = @()
if (-not (Test-Path -LiteralPath $folder -PathType Container)) {
    [void][System.IO.Directory]::CreateDirectory($folder)
    $changes += New-Change -Property 'parent_folder' -Before $null -After $folder
}

# The permissions first: ReplaceFile gives the new file the DACL of the file it replaces
# (learn.microsoft.com, ReplaceFileW, Remarks), so new content never lands under wider permissions. The
# previous version holds secrets too. One DACL lock for both files: its wait (dacl_lock_wait_ms, half of
# command_timeout_s at most) is then spent once, and AclBusy still arrives before the client gives up.
if (-not $aclOk -or -not $backupAclOk) {
    $daclLock = Enter-DaclLock
    try {
        if (-not $aclOk) { Set-ProtectedAcl $path $readerSids }
        if (-not $backupAclOk) { Set-ProtectedAcl $before.backup_path $readerSids }
    } finally {
        Exit-DaclLock $daclLock
    }
}
# The changes once the lock is released: Format-Acl translates each SID (an LSA lookup, slow for a domain account).
if (-not $aclOk) {
    $changes += New-Change -Property 'readers' -Before (Format-Acl $before.acl) -After (Format-Acl (Get-FileAcl $path))
}
if (-not $backupAclOk) {
    $changes += New-Change -Property 'backup_readers' -Before (Format-Acl $before.backup_acl) -After (Format-Acl (Get-FileAcl $before.backup_path))
}
# A file the Administrators could not read: the protected permissions just written give them Full control,
# so its content can be compared now (and is left alone when it is already the desired one).
if ($present -and -not $before.content_readable) {
    $previousHash = (Get-SettingsFileState $path).sha256
    $contentOk = ($previousHash -eq $desiredHash)
}

if (-not $contentOk) {
    # Write next to the target and swap it in, so a reader never sees a half-written file and a
    # failure leaves the old version in place.
    $temporary = New-TemporaryPath $path
    try {
        if ($null -eq $readerSids) {
            [System.IO.File]::WriteAllBytes($temporary, $desired)
        } else {
            # Created with the protected DACL and owner in CreateFile's security descriptor: the content is
            # never readable by others, not between writing it and setting permissions, nor in the temporary
            # file that a failed ReplaceFile moves into place.
            $stream = [System.IO.File]::Create($temporary, 4096, [System.IO.FileOptions]::None, (New-ProtectedFileSecurity $readerSids))
            try { $stream.Write($desired, 0, $desired.Length) } finally { $stream.Dispose() }
        }
        if ($present) {
            # Always a backup name: without one, ReplaceFileW's error 1177 leaves the previous version under a
            # name of the system's choosing (learn.microsoft.com, ReplaceFileW, Return value), which nothing
            # would find again. Not kept: a temporary name, deleted once the new content is in place.
            if ($Spec.keep_backup) { $backup = "$path.bak" } else { $backup = New-TemporaryPath $path }
            Invoke-FileReplace -Source $temporary -Target $path -Backup $backup
            if (-not $Spec.keep_backup) { Remove-FileQuietly $backup }
        } else {
            Invoke-FileMove $temporary $path
        }
    } finally {
        # Only once the target exists: after a half-done ReplaceFile the temporary file can hold the only copy.
        if ((Test-Path -LiteralPath $temporary) -and (Test-Path -LiteralPath $path -PathType Leaf)) { Remove-FileQuietly $temporary }
    }
}

$after = Get-SettingsFileState $path
$after.reader_sids = $readerSids
if (-not $contentOk) { $changes += New-Change -Property 'content' -Before $previousHash -After $after.sha256 }
Complete-Operation -State $after -Changed $true -Changes $changes
