param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_iis.ps1' %}
{% include '_common.ps1' %}

Import-IisAdministration
$name = [string]$Spec.name

# Only the site: its pool, folder and certificates belong to other resources.
$result = Invoke-IisChange {
    param($manager)
    $site = $manager.Sites[$name]
    if ($null -eq $site) { return @{ Changes = @() } }
    # Removing each binding first also removes its HTTP.sys certificate binding (unless shared):
    # Sites.Remove alone changes only the configuration.
    foreach ($binding in @($site.Bindings)) { Remove-IisBinding $manager $site $binding }
    $manager.Sites.Remove($site)
    @{ Changes = @(New-Change -Property 'ensure' -Before 'present' -After 'absent') }
}

$manager = New-Object Microsoft.Web.Administration.ServerManager
try {
    $after = Get-SiteState $manager $name
} finally {
    $manager.Dispose()
}
Complete-Operation -State $after -Changed (@($result.Changes).Count -gt 0) -Changes @($result.Changes)
