param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_iis.ps1' %}
{% include '_owners.ps1' %}
{% include '_common.ps1' %}

Import-IisAdministration
$folder = Get-DefaultsOwnersFolder
$mine = Get-OwnerRecordPath $folder ([string]$Spec.owner)
$foundPath = Get-FoundRecordPath $folder

$lock = Enter-OwnersLock
try {
    Initialize-OwnersFolder $folder
    # Recorded before anything is removed: a reply lost after the removal still leaves this resource an
    # owner, so its destroy restores what was removed.
    $recordedNow = $false
    if (-not [System.IO.File]::Exists($mine)) {
        Write-OwnersJson $mine ([ordered]@{ owner = [string]$Spec.owner })
        $recordedNow = $true
    }
    # The state's id, when the resource's id changed (a renamed stack or resource): its record moves here.
    if ([string]$Spec.previous_owner -and [string]$Spec.previous_owner -ne [string]$Spec.owner) {
        [System.IO.File]::Delete((Get-OwnerRecordPath $folder ([string]$Spec.previous_owner)))
    }

    try {
        $result = Invoke-IisChange {
            param($manager)
            $changes = @()
            # What an earlier owner (or an earlier try of this one) removed is kept: that is what was there.
            $found = Read-OwnersJson $foundPath
            $record = [ordered]@{ site = $null; pool = $null }
            if ($null -ne $found) { $record.site = $found.site; $record.pool = $found.pool }
            $site = $manager.Sites[[string]$Spec.site_name]
            if ($null -ne $site) {
                if ($null -eq $record.site) { $record.site = Get-SiteRecord $site }
                # Removing each binding first also removes any HTTP.sys certificate binding someone added (unless
                # another site shares it): Sites.Remove alone changes only the configuration.
                foreach ($binding in @($site.Bindings)) { Remove-IisBinding $manager $site $binding }
                $manager.Sites.Remove($site)
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
                if ($null -eq $record.pool) { $record.pool = Get-PoolRecord $pool }
                $manager.ApplicationPools.Remove($pool)
                $changes += New-Change -Property 'default_pool' -Before 'present' -After 'absent'
            }
            # Saved before the commit that removes them.
            if ($changes.Count -gt 0) { Write-OwnersJson $foundPath $record }
            @{ Changes = $changes }
        }
    } catch {
        # A removal that fails (AppPoolInUse, a commit error) creates no resource, so it leaves no share behind.
        if ($recordedNow) { [System.IO.File]::Delete($mine) }
        throw
    }

    $manager = New-Object Microsoft.Web.Administration.ServerManager
    try {
        $after = Get-DefaultsState $manager
    } finally {
        $manager.Dispose()
    }
    # What this removal holds, read from the host: the same answer after a retry.
    $found = Read-OwnersJson $foundPath
    $after.removed_site = $null -ne $found -and $null -ne $found.site
    $after.removed_pool = $null -ne $found -and $null -ne $found.pool
    $after.owners = (Read-OwnerRecords $folder).Count
    Complete-Operation -State $after -Changed (@($result.Changes).Count -gt 0) -Changes @($result.Changes)
} finally {
    Exit-OwnersLock $lock
}
