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
$initialized = $false
try {
    Initialize-OwnersFolder $folder
    $initialized = $true
    # Recorded before anything is removed: a reply lost after the removal still leaves this resource an
    # owner, so its destroy restores what was removed.
    $recordedNow = $false
    if (-not [System.IO.File]::Exists($mine)) {
        Write-OwnersJson $mine ([ordered]@{ owner = [string]$Spec.owner })
        $recordedNow = $true
    }
    $previousPath = $null
    if ([string]$Spec.previous_owner -and [string]$Spec.previous_owner -ne [string]$Spec.owner) { $previousPath = Get-OwnerRecordPath $folder ([string]$Spec.previous_owner) }
    # A new owner and no other: a found.json there was left by a restore that failed half-way, and says
    # nothing about what is there now (an owner that already held the removal keeps what it removed).
    $firstOwner = $recordedNow
    foreach ($other in (Read-OwnerRecords $folder)) { if ([string]$other.owner -ne [string]$Spec.owner) { $firstOwner = $false } }

    # Before any attempt removes a binding (D4 of review-owners2; see Get-SiteCertificates).
    $certificatesBefore = Get-SiteCertificates ([string]$Spec.site_name)
    try {
        $result = Invoke-IisChange {
            param($manager)
            $changes = @()
            $site = $manager.Sites[[string]$Spec.site_name]
            $pool = $manager.ApplicationPools[[string]$Spec.pool_name]
            # What an earlier owner (or an earlier try of this one) removed is kept: that is what was there.
            $found = Read-OwnersJson $foundPath
            $record = [ordered]@{ site = $null; pool = $null }
            if ($null -ne $found) { $record.site = $found.site; $record.pool = $found.pool }
            $recordChanged = $false
            if ($firstOwner) {
                # Stale for what is there now: that is what a later restore must put back.
                if ($null -ne $site -and $null -ne $record.site) { $record.site = $null; $recordChanged = $true }
                if ($null -ne $pool -and $null -ne $record.pool) { $record.pool = $null; $recordChanged = $true }
            }
            # A state from before owners were recorded on the host: its removed_site / removed_pool (the
            # provider passes them as restore_*) say what an earlier version removed, put back as installed.
            # Also when a newer owner recorded first and found nothing to save (found.json with no site or pool).
            if ($null -eq $record.site -and $null -eq $site -and [bool]$Spec.restore_site) { $record.site = Get-StockSiteRecord; $recordChanged = $true }
            if ($null -eq $record.pool -and $null -eq $pool -and [bool]$Spec.restore_pool) { $record.pool = Get-StockPoolRecord; $recordChanged = $true }
            if ($null -ne $site) {
                $added = Get-AddedSiteContent $site
                if ($added.Count -gt 0) {
                    Stop-Operation -Id 'DefaultSiteHasContent' -Category 'ResourceExists' -Property 'ensure' -Message "'$($site.Name)' has $($added -join ', '), added after installation; removing the site would lose them and they could not be restored: move them to another site (or delete them), then run again"
                }
                if ($null -eq $record.site) { $record.site = Get-SiteRecord $site $certificatesBefore }
                # Removing each binding first also removes any HTTP.sys certificate binding someone added (unless
                # another site shares it): Sites.Remove alone changes only the configuration.
                foreach ($binding in @($site.Bindings)) { Remove-IisBinding $manager $site $binding }
                $manager.Sites.Remove($site)
                $changes += New-Change -Property 'default_site' -Before 'present' -After 'absent'
            }
            if ($null -ne $pool) {
                $users = @(foreach ($other in $manager.Sites) {
                    foreach ($application in $other.Applications) {
                        if ($application.ApplicationPoolName -eq $pool.Name) { "$($other.Name)$($application.Path)" }
                    }
                })
                if ($users.Count -gt 0) {
                    Stop-Operation -Id 'AppPoolInUse' -Category 'ResourceExists' -Property 'ensure' -Message "'$($pool.Name)' is used by $($users -join ', '); those applications were added after installation, so the pool is kept: move them to another pool first"
                }
                if ($null -eq $record.pool) { $record.pool = Get-PoolRecord $pool }
                $manager.ApplicationPools.Remove($pool)
                $changes += New-Change -Property 'default_pool' -Before 'present' -After 'absent'
            }
            # Saved before the commit that removes them (or, with nothing to remove, when the record changed).
            if ($changes.Count -gt 0 -or $recordChanged) {
                if ($null -eq $record.site -and $null -eq $record.pool) { [System.IO.File]::Delete($foundPath) } else { Write-OwnersJson $foundPath $record }
            }
            @{ Changes = $changes }
        }
    } catch {
        # A removal that fails (AppPoolInUse, a commit error) creates no resource, so it leaves no share behind.
        if ($recordedNow) { [System.IO.File]::Delete($mine) }
        throw
    }
    # The state's id, when the resource's id changed (a renamed stack or resource): its record goes once
    # this one holds the removal.
    if ($null -ne $previousPath -and [System.IO.File]::Exists($previousPath)) { [System.IO.File]::Delete($previousPath) }

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
    # A refused or failed set leaves no folder that records nothing (not one Initialize-OwnersFolder refused).
    if ($initialized) { Remove-UnusedOwnersFolder $folder }
    Exit-OwnersLock $lock
}
