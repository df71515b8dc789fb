param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_owners.ps1' %}
{% include '_common.ps1' %}

# Readers that another owner of the certificate declared (or that it had when found in the store) are
# theirs: not reported as this resource's drift. Read under the owners lock: a remove of another owner may
# be deleting the folder meanwhile, and a reader it revokes must not count as still declared.
$folder = Get-CertificateOwnersFolder $Spec
Initialize-ReaderLookups $Spec @()
$lock = Enter-OwnersLock
try {
    Assert-OwnersFolder $folder
    $state = Select-OwnReaders (Get-CertificateState $Spec) (Get-ReadersOfOthers $folder ([string]$Spec.owner))
} finally {
    Exit-OwnersLock $lock
}
Complete-Operation -State $state
