param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_owners.ps1' %}
{% include '_common.ps1' %}

# This resource gives up its share: its owner record and the readers only it declared. The certificate
# and its key go only with the last owner, when nobody found it in the store before, and when no HTTP.sys
# binding presents it.
$owner = [string]$Spec.owner
$folder = Get-CertificateOwnersFolder $Spec
Initialize-ReaderLookups $Spec @()  # the LSA lookups, before the lock
$lock = Enter-OwnersLock
try {
    Assert-OwnersFolder $folder
    $before = Get-CertificateState $Spec
    # Recorded: an owner record or found.json is there (an empty folder, left by a refused set, is not).
    $recorded = Test-OwnersRecorded $folder
    $mine = Get-OwnerRecordPath $folder $owner
    # The readers this resource declared at its last set (its record), not today's inputs: an account
    # deleted since must not make the removal fail. A state from before owners were recorded on the host
    # has no record: the readers it declares are its own then.
    $record = Read-OwnersJson $mine
    $myReaders = @()
    if ($null -ne $record) { $myReaders = @($record.readers) }
    if (-not $recorded) {
        $declared = Get-DeclaredReaderSids $Spec
        $myReaders = @($declared | Where-Object { $_ })
    }
    $others = New-Object System.Collections.Generic.List[object]
    foreach ($other in (Read-OwnerRecords $folder)) { if ([string]$other.owner -ne $owner) { $others.Add($other) } }
    $foundRecord = Read-OwnersJson (Get-FoundRecordPath $folder)
    $found = $null -ne $foundRecord
    if ($before.ensure -eq 'absent') {
        if ([System.IO.File]::Exists($mine)) { [System.IO.File]::Delete($mine) }
        if ($others.Count -eq 0) { Remove-OwnersFolder $folder }
        Complete-Operation -State $before
    }
    $bindings = Get-CertificateBindings $before.thumbprint ([string]$Spec.store_name)
    # No record on the host: a state written before owners were recorded there; its 'imported' decides.
    $last = if ($recorded) { $others.Count -eq 0 -and -not $found } else { [bool]$Spec.imported }
    if (-not $last -or $bindings.Count -gt 0) {
        $changes = @()
        $othersReaders = Get-ReadersOfOthers $folder $owner
        $current = Select-OwnReaders $before $othersReaders
        if ($others.Count -eq 0 -and $found) {
            # The last owner of a certificate found in the store: it goes back to the readers it had then.
            # Whatever an owner added is undone, this one's and a reader whose record was lost on the way.
            $foundReaders = @($foundRecord.readers)
            $revoke = @($before.private_key_readers | Where-Object { $foundReaders -notcontains $_.sid })
        } else {
            $mineOnly = @($myReaders | Where-Object { $othersReaders -notcontains $_ })
            $revoke = @($current.private_key_readers | Where-Object { $mineOnly -contains $_.sid })
        }
        if ($revoke.Count -gt 0) {
            # Each key file under Crypto\RSA\MachineKeys or Crypto\Keys has its own DACL, not the folder's
            # (Microsoft KB 278381, "Default permissions for the MachineKeys folders"): only these reader
            # entries are taken off it; the DACL alone is read and written back, as set does.
            $file = New-Object System.IO.FileInfo($before.key_file)
            $security = $file.GetAccessControl([System.Security.AccessControl.AccessControlSections]::Access)
            foreach ($reader in $revoke) {
                $identity = New-Object System.Security.Principal.SecurityIdentifier([string]$reader.sid)
                $security.RemoveAccessRuleAll((New-Object System.Security.AccessControl.FileSystemAccessRule(
                    $identity, [System.Security.AccessControl.FileSystemRights]::Read, [System.Security.AccessControl.AccessControlType]::Allow)))
            }
            $file.SetAccessControl($security)
            $changes += New-Change -Property 'private_key_readers' -Before @($revoke | ForEach-Object { $_.name }) -After @()
        }
        # The record goes once its readers are off the key (a failure before leaves them owned, for a retry).
        if ([System.IO.File]::Exists($mine)) { [System.IO.File]::Delete($mine) }
        if ($others.Count -eq 0) { Remove-OwnersFolder $folder }
        $after = Get-CertificateState $Spec
        $after.left_in_store = $true
        $after.other_owners = $others.Count
        $after.found_in_store = $found -or -not $recorded
        $after.bound_by = @($bindings)
        Complete-Operation -State $after -Changed ($changes.Count -gt 0) -Changes $changes
    }
    # -DeleteKey removes the key file with the certificate; X509Store.Remove would leave the key behind.
    $path = 'Cert:\{0}\{1}\{2}' -f $Spec.store_location, $Spec.store_name, $before.thumbprint
    Remove-Item -Path $path -DeleteKey
    Remove-OwnersFolder $folder
    $after = Get-CertificateState $Spec
    Complete-Operation -State $after -Changed $true -Changes @(New-Change -Property 'ensure' -Before 'present' -After 'absent')
} finally {
    Exit-OwnersLock $lock
}
