param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_owners.ps1' %}
{% include '_common.ps1' %}

$thumbprint = ([string]$Spec.thumbprint).ToUpperInvariant()
$owner = [string]$Spec.owner
$folder = Get-CertificateOwnersFolder $Spec
$changes = @()
# The readers' SIDs are looked up before the lock: an LSA lookup of a domain account can be slow, and every
# operation on a shared object of the host waits for this one meanwhile.
$wanted = @(@($Spec.private_key_readers) | ForEach-Object { (Resolve-Principal ([string]$_)).Value })
Initialize-ReaderLookups $Spec $wanted  # the names they get in the output, too
$previousPath = $null
if ([string]$Spec.previous_owner -and [string]$Spec.previous_owner -ne $owner) { $previousPath = Get-OwnerRecordPath $folder ([string]$Spec.previous_owner) }

$lock = Enter-OwnersLock
$initialized = $false
try {
    Initialize-OwnersFolder $folder
    $initialized = $true
    $before = Get-CertificateState $Spec
    $mine = Get-OwnerRecordPath $folder $owner
    $foundPath = Get-FoundRecordPath $folder
    # Checked before anything is recorded: a set refused here leaves no share behind.
    if ($before.ensure -eq 'present' -and $before.has_private_key -and [bool]$before.exportable -ne [bool]$Spec.exportable) {
        Stop-Operation -Id 'ExportPolicyDiffers' -Property 'exportable' -Message (
            "certificate $thumbprint is already in $($Spec.store_location)\$($Spec.store_name) with exportable=" +
            "$($before.exportable), imported by someone else; set exportable to match, or remove it from the store first.")
    }
    # A certificate gone from the store was not found there by anyone now: what found.json said about it (kept
    # on destroy, its readers) is stale, and whoever imports it now is its owner.
    if ($before.ensure -eq 'absent' -and [System.IO.File]::Exists($foundPath)) { [System.IO.File]::Delete($foundPath) }
    $recordedNow = $false
    if (-not [System.IO.File]::Exists($mine)) {
        # The first owner finds the certificate in the store: someone else put it there (or, with
        # imported_by_state, this resource did, before owners were recorded on the host). It stays on
        # destroy, and so do the readers it had.
        $others = Read-OwnerRecords $folder
        if ($before.ensure -eq 'present' -and $others.Count -eq 0 -and -not [bool]$Spec.imported_by_state -and
            -not [System.IO.File]::Exists($foundPath)) {
            Write-OwnersJson $foundPath ([ordered]@{ readers = @($before.private_key_readers | ForEach-Object { $_.sid }) })
        }
        # Recorded before the import: a reply lost after it (or a failure in it) still leaves the certificate
        # owned, and the retry finds this record. With the readers of the state's id, when the resource's id
        # changed (a renamed stack or resource): until this record holds them, that one is kept.
        $inherited = @()
        if ($null -ne $previousPath) {
            $previous = Read-OwnersJson $previousPath
            if ($null -ne $previous) { $inherited = @($previous.readers) }
        }
        Write-OwnersJson $mine ([ordered]@{ owner = $owner; readers = @($inherited) })
        $recordedNow = $true
    }

    if (-not ($before.ensure -eq 'present' -and $before.has_private_key)) {
        try {
            # No file: the bytes go from standard input to the constructor. MachineKeySet puts the key in the
            # machine's key store (not the WinRM user's profile); PersistKeySet keeps it after this process.
            $flags = [System.Security.Cryptography.X509Certificates.X509KeyStorageFlags]'MachineKeySet, PersistKeySet'
            if ([bool]$Spec.exportable) {
                $flags = $flags -bor [System.Security.Cryptography.X509Certificates.X509KeyStorageFlags]::Exportable
            }
            $bytes = [Convert]::FromBase64String([string]$Spec.pfx)
            # The whole PFX, not only its first certificate: the intermediate CA certificates go to
            # LocalMachine\CA below. The certificate is the one with the key, as X509Certificate2's constructor picks it.
            $collection = New-Object System.Security.Cryptography.X509Certificates.X509Certificate2Collection
            try {
                $collection.Import($bytes, [string]$Spec.pfx_password, $flags)
                $certificate = @($collection | Where-Object { $_.HasPrivateKey }) + @($collection) | Select-Object -First 1
            } catch {
                $reason = $_.Exception
                while ($null -ne $reason.InnerException) { $reason = $reason.InnerException }
                # 0x80070056 ERROR_INVALID_PASSWORD: "The specified network password is not correct."
                if ($reason.HResult -eq -2147024810) {
                    Stop-Operation -Id 'PfxPasswordIncorrect' -Category 'InvalidData' -Property 'pfx_password' -Message (
                        "$($reason.Message) Give the password the PFX was exported with.")
                }
                Stop-Operation -Id 'PfxImportFailed' -Category 'InvalidData' -Property 'pfx' -Message (
                    "the PFX could not be imported: $($reason.Message) Give the bytes of an intact .pfx file, base64-encoded.")
            } finally {
                [Array]::Clear($bytes, 0, $bytes.Length)
            }
            if ($null -eq $certificate) {
                Stop-Operation -Id 'PfxImportFailed' -Category 'InvalidData' -Property 'pfx' -Message (
                    'the PFX could not be imported: it holds no certificate. Give the bytes of an intact .pfx file, base64-encoded.')
            }
            if ($certificate.Thumbprint -ne $thumbprint) {
                Remove-ImportedKeys $collection
                Stop-Operation -Id 'ThumbprintMismatch' -Property 'pfx' -Message (
                    "the PFX's certificate has thumbprint $($certificate.Thumbprint), expected $thumbprint; the PFX changed between check and import.")
            }
            if (-not $certificate.HasPrivateKey) {
                Remove-ImportedKeys $collection
                Stop-Operation -Id 'PfxHasNoPrivateKey' -Property 'pfx' -Message (
                    'the PFX holds no private key; export the certificate together with its private key.')
            }
            $store = Open-CertificateStore $Spec 'ReadWrite'
            try { $store.Add($certificate) } finally { $store.Close() }
            if ($before.ensure -eq 'absent') {
                $changes += New-Change -Property 'ensure' -Before 'absent' -After 'present'
            } else {
                $changes += New-Change -Property 'has_private_key' -Before $false -After $true
            }
            # IIS (HTTP.sys, SChannel) sends the chain it builds from the machine's stores, so intermediates
            # missing from LocalMachine\CA mean an incomplete chain for clients that do not fetch them
            # (learn.microsoft.com, "Certificate stores": Intermediate Certification Authorities). A
            # self-signed root is left out: trusting a root (Root store) is the administrator's call. Not recorded
            # as this resource's: they stay on destroy (public, and other certificates may chain through them; the
            # pfx property's docs say so), as CertificateDsc's PfxImport leaves them.
            $intermediates = @($collection | Where-Object { $_.Thumbprint -ne $certificate.Thumbprint -and $_.Subject -ne $_.Issuer })
            if ($intermediates.Count -gt 0) {
                $added = @()
                $caStore = Open-CertificateStore ([ordered]@{ store_name = 'CA'; store_location = 'LocalMachine' }) 'ReadWrite'
                try {
                    foreach ($intermediate in $intermediates) {
                        if ($null -eq (Find-StoreCertificate $caStore $intermediate.Thumbprint)) {
                            $caStore.Add($intermediate)
                            $added += $intermediate.Thumbprint
                        }
                    }
                } finally { $caStore.Close() }
                if ($added.Count -gt 0) { $changes += New-Change -Property 'intermediate_certificates' -Before $null -After $added }
            }
        } catch {
            # A failed import creates no resource, so it leaves no share behind: the record written for it
            # goes, unless the certificate did reach the store (then it is this resource's, as on a retry).
            if ($recordedNow -and (Get-CertificateState $Spec).ensure -eq 'absent') { [System.IO.File]::Delete($mine) }
            throw
        }
    }

    # Readers: this resource's own are granted; another owner's (and what the certificate had when found)
    # are left alone; any other reader is removed.
    $othersReaders = Get-ReadersOfOthers $folder $owner
    $current = Get-CertificateState $Spec
    $present = @($current.private_key_readers | ForEach-Object { $_.sid })
    $missing = @($wanted | Where-Object { $present -notcontains $_ })
    $extra = @($present | Where-Object { $wanted -notcontains $_ -and $othersReaders -notcontains $_ })
    $current = Select-OwnReaders $current $othersReaders
    # Recorded before they are granted (a failure in between leaves them owned, and removed on destroy).
    Write-OwnersJson $mine ([ordered]@{ owner = $owner; readers = @($wanted) })
    # The state's id (a renamed resource) goes once this record holds what it declared.
    if ($null -ne $previousPath -and [System.IO.File]::Exists($previousPath)) { [System.IO.File]::Delete($previousPath) }
    if ($missing.Count -gt 0 -or $extra.Count -gt 0) {
        $file = New-Object System.IO.FileInfo($current.key_file)
        # Only the DACL is read and written back: owner and SACL stay untouched (no SeSecurityPrivilege needed).
        $security = $file.GetAccessControl([System.Security.AccessControl.AccessControlSections]::Access)
        foreach ($sid in $extra) {
            $identity = New-Object System.Security.Principal.SecurityIdentifier($sid)
            $security.RemoveAccessRuleAll((New-Object System.Security.AccessControl.FileSystemAccessRule(
                $identity, [System.Security.AccessControl.FileSystemRights]::Read, [System.Security.AccessControl.AccessControlType]::Allow)))
        }
        foreach ($sid in $missing) {
            $identity = New-Object System.Security.Principal.SecurityIdentifier($sid)
            $security.AddAccessRule((New-Object System.Security.AccessControl.FileSystemAccessRule(
                $identity, [System.Security.AccessControl.FileSystemRights]::Read, [System.Security.AccessControl.AccessControlType]::Allow)))
        }
        $file.SetAccessControl($security)
        $after = Select-OwnReaders (Get-CertificateState $Spec) $othersReaders
        $changes += New-Change -Property 'private_key_readers' -Before @($current.private_key_readers | ForEach-Object { $_.name }) -After @($after.private_key_readers | ForEach-Object { $_.name })
        $current = $after
    }

    # imported: put in the store by one of its owners (not found there), read from the host, so a retry
    # after a lost reply answers the same.
    $current.imported = -not [System.IO.File]::Exists($foundPath)
    $current.owners = (Read-OwnerRecords $folder).Count
    Complete-Operation -State $current -Changed ($changes.Count -gt 0) -Changes $changes
} finally {
    # A refused set (ExportPolicyDiffers, a failed import) leaves no folder that records nothing.
    # (Not a folder Initialize-OwnersFolder refused: that one is the administrator's to check.)
    if ($initialized) { Remove-UnusedOwnersFolder $folder }
    Exit-OwnersLock $lock
}
