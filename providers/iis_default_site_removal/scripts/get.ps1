param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_iis.ps1' %}
{% include '_common.ps1' %}

Import-IisAdministration
$manager = New-Object Microsoft.Web.Administration.ServerManager
try {
    Complete-Operation -State (Get-DefaultsState $manager)
} finally {
    $manager.Dispose()
}
