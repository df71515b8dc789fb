param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_common.ps1' %}

# Only a certificate this resource imported: one that was in the store before may serve others.
$before = Get-CertificateState $Spec
if ($before.ensure -eq 'absent') {
    Complete-Operation -State $before
}
if (-not [bool]$Spec.imported) {
    $before.left_in_store = $true
    Complete-Operation -State $before
}
# -DeleteKey removes the key file with the certificate; X509Store.Remove would leave the key behind.
$path = 'Cert:\{0}\{1}\{2}' -f $Spec.store_location, $Spec.store_name, $before.thumbprint
Remove-Item -Path $path -DeleteKey
$after = Get-CertificateState $Spec
Complete-Operation -State $after -Changed $true -Changes @(New-Change -Property 'ensure' -Before 'present' -After 'absent')
