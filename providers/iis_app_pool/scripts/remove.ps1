param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_iis.ps1' %}
{% include '_common.ps1' %}

Import-IisAdministration
$name = [string]$Spec.name

$result = Invoke-IisChange {
    param($manager)
    $pool = $manager.ApplicationPools[$name]
    if ($null -eq $pool) { return @{ Changes = @() } }
    # IIS would delete a pool that applications still name; they would then be ignored by WAS and
    # their site would answer 503. Refuse instead, naming them.
    $users = @(foreach ($site in $manager.Sites) {
        foreach ($application in $site.Applications) {
            if ($application.ApplicationPoolName -eq $pool.Name) { "$($site.Name)$($application.Path)" }
        }
    })
    if ($users.Count -gt 0) {
        Stop-Operation -Id 'AppPoolInUse' -Property 'name' -Message "application pool '$name' is used by $($users -join ', '); move or delete those applications (IisSite) first"
    }
    $manager.ApplicationPools.Remove($pool)
    @{ Changes = @(New-Change -Property 'ensure' -Before 'present' -After 'absent') }
}

$manager = New-Object Microsoft.Web.Administration.ServerManager
try {
    $after = Get-PoolState $manager $name
} finally {
    $manager.Dispose()
}
Complete-Operation -State $after -Changed (@($result.Changes).Count -gt 0) -Changes @($result.Changes)
