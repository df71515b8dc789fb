param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_owners.ps1' %}
{% include '_common.ps1' %}

# Readers that another owner of the certificate declared (or that it had when found in the store) are
# theirs: not reported as this resource's drift.
$folder = Get-CertificateOwnersFolder $Spec
Assert-OwnersFolder $folder
$state = Select-OwnReaders (Get-CertificateState $Spec) (Get-ReadersOfOthers $folder ([string]$Spec.owner))
Complete-Operation -State $state
