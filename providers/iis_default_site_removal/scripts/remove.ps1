param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_iis.ps1' %}
{% include '_common.ps1' %}

Import-IisAdministration

# Puts back only what set removed, as IIS's installation creates it: the pool with every setting
# inherited from applicationPoolDefaults, the site with id 1 (when free), http on *:80 and wwwroot.
$result = Invoke-IisChange {
    param($manager)
    $changes = @()
    if ($Spec.restore_pool -and $null -eq $manager.ApplicationPools[[string]$Spec.pool_name]) {
        [void]$manager.ApplicationPools.Add([string]$Spec.pool_name)
        $changes += New-Change -Property 'default_pool' -Before 'absent' -After 'present'
    }
    if ($Spec.restore_site -and $null -eq $manager.Sites[[string]$Spec.site_name]) {
        $idTaken = @($manager.Sites | Where-Object { $_.Id -eq 1 }).Count -gt 0
        $site = $manager.Sites.Add([string]$Spec.site_name, 'http', '*:80:', '%SystemDrive%\inetpub\wwwroot')
        if (-not $idTaken) { $site.Id = 1 }
        $changes += New-Change -Property 'default_site' -Before 'absent' -After 'present'
    }
    @{ Changes = $changes }
}

$manager = New-Object Microsoft.Web.Administration.ServerManager
try {
    $after = Get-DefaultsState $manager
} finally {
    $manager.Dispose()
}
Complete-Operation -State $after -Changed (@($result.Changes).Count -gt 0) -Changes @($result.Changes)
