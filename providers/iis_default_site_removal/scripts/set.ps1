param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_iis.ps1' %}
{% include '_common.ps1' %}

Import-IisAdministration

$result = Invoke-IisChange {
    param($manager)
    $changes = @()
    $removedSite = $false
    $removedPool = $false
    $site = $manager.Sites[[string]$Spec.site_name]
    if ($null -ne $site) {
        # Removing each binding first also removes any HTTP.sys certificate binding someone added (unless
        # another site shares it): Sites.Remove alone changes only the configuration.
        foreach ($binding in @($site.Bindings)) { Remove-IisBinding $manager $site $binding }
        $manager.Sites.Remove($site)
        $removedSite = $true
        $changes += New-Change -Property 'default_site' -Before 'present' -After 'absent'
    }
    $pool = $manager.ApplicationPools[[string]$Spec.pool_name]
    if ($null -ne $pool) {
        $users = @(foreach ($other in $manager.Sites) {
            foreach ($application in $other.Applications) {
                if ($application.ApplicationPoolName -eq $pool.Name) { "$($other.Name)$($application.Path)" }
            }
        })
        if ($users.Count -gt 0) {
            Stop-Operation -Id 'AppPoolInUse' -Message "'$($pool.Name)' is used by $($users -join ', '); those applications were added after installation, so the pool is kept: move them to another pool first"
        }
        $manager.ApplicationPools.Remove($pool)
        $removedPool = $true
        $changes += New-Change -Property 'default_pool' -Before 'present' -After 'absent'
    }
    @{ Changes = $changes; RemovedSite = $removedSite; RemovedPool = $removedPool }
}

$manager = New-Object Microsoft.Web.Administration.ServerManager
try {
    $after = Get-DefaultsState $manager
} finally {
    $manager.Dispose()
}
$after.removed_site = [bool]$result.RemovedSite
$after.removed_pool = [bool]$result.RemovedPool
Complete-Operation -State $after -Changed (@($result.Changes).Count -gt 0) -Changes @($result.Changes)
