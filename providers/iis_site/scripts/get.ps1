param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_iis.ps1' %}
{% include '_common.ps1' %}

Import-IisAdministration
$manager = New-Object Microsoft.Web.Administration.ServerManager
try {
    Complete-Operation -State (Get-SiteState $manager ([string]$Spec.name))
} finally {
    $manager.Dispose()
}
