param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_common.ps1' %}

$path = [string]$Spec.path
# $null: the file's permissions are not managed (it takes its folder's). A list, even empty: protected.
$readerSids = $null
if ($null -ne $Spec.readers) { $readerSids = @(@($Spec.readers) | ForEach-Object { Resolve-ReaderSid ([string]$_) }) }
$before = Get-SettingsFileState $path
[byte[]] $desired = ConvertTo-FileBytes ([string]$Spec.content) ([string]$Spec.encoding)
$desiredHash = Get-Sha256Hex $desired

$contentOk = ($before.ensure -eq 'present' -and $before.sha256 -eq $desiredHash)
$aclOk = ($null -eq $readerSids) -or ($before.ensure -ne 'present') -or (Test-ProtectedAcl $before.acl $readerSids)
$backupAclOk = ($null -eq $readerSids) -or ($null -eq $before.backup_path) -or (Test-ProtectedAcl $before.backup_acl $readerSids)
if ($contentOk -and $aclOk -and $backupAclOk) {
    $before.reader_sids = $readerSids
    Complete-Operation -State $before
}

$folder = [System.IO.Path]::GetDirectoryName($path)
$changes = @()
if (-not (Test-Path -LiteralPath $folder -PathType Container)) {
    [void][System.IO.Directory]::CreateDirectory($folder)
    $changes += New-Change -Property 'parent_folder' -Before $null -After $folder
}

# The permissions first: ReplaceFile gives the new file the DACL of the file it replaces
# (learn.microsoft.com, ReplaceFileW, Remarks), so new content never lands under wider permissions.
if (-not $aclOk) {
    Set-ProtectedAcl $path $readerSids
    $changes += New-Change -Property 'readers' -Before (Format-Acl $before.acl) -After (Format-Acl (Get-FileAcl $path))
}
# The previous version holds secrets too.
if (-not $backupAclOk) {
    Set-ProtectedAcl $before.backup_path $readerSids
    $changes += New-Change -Property 'backup_readers' -Before (Format-Acl $before.backup_acl) -After (Format-Acl (Get-FileAcl $before.backup_path))
}

if (-not $contentOk) {
    # Write next to the target and swap it in, so a reader never sees a half-written file and a
    # failure leaves the old version in place.
    $temporary = [System.IO.Path]::Combine($folder, '.' + [System.IO.Path]::GetFileName($path) + '.' + [guid]::NewGuid().ToString('N') + '.tmp')
    try {
        if ($null -eq $readerSids) {
            [System.IO.File]::WriteAllBytes($temporary, $desired)
        } else {
            # Created with the protected DACL in CreateFile's security descriptor: the content is never
            # readable by others, not between writing it and setting permissions, nor in the temporary
            # file that a failed ReplaceFile moves into place.
            $stream = [System.IO.File]::Create($temporary, 4096, [System.IO.FileOptions]::None, (New-ProtectedFileSecurity $readerSids))
            try { $stream.Write($desired, 0, $desired.Length) } finally { $stream.Dispose() }
        }
        if ($before.ensure -eq 'present') {
            $backup = $null
            if ($Spec.keep_backup) { $backup = "$path.bak" }
            Invoke-FileReplace -Source $temporary -Target $path -Backup $backup
        } else {
            [System.IO.File]::Move($temporary, $path)
        }
    } finally {
        # Only once the target exists: after a half-done ReplaceFile the temporary file can hold the only copy.
        if ((Test-Path -LiteralPath $temporary) -and (Test-Path -LiteralPath $path -PathType Leaf)) { Remove-Item -LiteralPath $temporary -Force }
    }
}

$after = Get-SettingsFileState $path
$after.reader_sids = $readerSids
if (-not $contentOk) { $changes += New-Change -Property 'content' -Before $before.sha256 -After $after.sha256 }
Complete-Operation -State $after -Changed $true -Changes $changes
