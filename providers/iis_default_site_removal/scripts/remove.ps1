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
    Assert-OwnersFolder $folder
    # Recorded: an owner record or found.json is there (an empty folder, left by a refused set, is not).
    $recorded = Test-OwnersRecorded $folder
    $wasOwner = [System.IO.File]::Exists($mine)
    if ($wasOwner) { [System.IO.File]::Delete($mine) }
    $others = (Read-OwnerRecords $folder).Count
    $found = Read-OwnersJson $foundPath
    if (-not $wasOwner) {
        # A state written before owners were recorded on the host (this resource left no record): its
        # removed_site / removed_pool say what was removed, and that comes back as IIS's installation creates
        # it, unless found.json already keeps it as it was (a newer owner that recorded first found it gone,
        # so its found.json holds no site or pool).
        $merged = [ordered]@{ site = $null; pool = $null }
        if ($null -ne $found) { $merged.site = $found.site; $merged.pool = $found.pool }
        $stockAdded = $false
        if ($Spec.restore_site -and $null -eq $merged.site) { $merged.site = Get-StockSiteRecord; $stockAdded = $true }
        if ($Spec.restore_pool -and $null -eq $merged.pool) { $merged.pool = Get-StockPoolRecord; $stockAdded = $true }
        if ($null -ne $found -or $stockAdded) { $found = $merged }
        # The last of the other owners puts it back: found.json must say so before this one leaves.
        if ($stockAdded -and $recorded -and $others -gt 0) { Write-OwnersJson $foundPath $found }
    }
    if ($recorded -and $others -gt 0) {
        # Another owner still wants them removed: nothing comes back yet.
        $manager = New-Object Microsoft.Web.Administration.ServerManager
        try { $after = Get-DefaultsState $manager } finally { $manager.Dispose() }
        $after.other_owners = $others
        Complete-Operation -State $after
    }

    # The last owner puts back exactly what was removed.
    $result = Invoke-IisChange {
        param($manager)
        $changes = @()
        $skipped = @()
        if ($null -ne $found -and $null -ne $found.pool -and $null -eq $manager.ApplicationPools[[string]$Spec.pool_name]) {
            Restore-Pool $manager $found.pool
            $changes += New-Change -Property 'default_pool' -Before 'absent' -After 'present'
        }
        if ($null -ne $found -and $null -ne $found.site -and $null -eq $manager.Sites[[string]$Spec.site_name]) {
            $skipped = Restore-Site $manager $found.site
            $changes += New-Change -Property 'default_site' -Before 'absent' -After 'present'
        }
        @{ Changes = $changes; Skipped = @($skipped) }
    }

    $manager = New-Object Microsoft.Web.Administration.ServerManager
    try {
        $warning = $null
        if ($null -ne $found) { $warning = Restore-RuntimeState $manager $found }
        $after = Get-DefaultsState $manager
    } finally {
        $manager.Dispose()
    }
    Remove-OwnersFolder $folder
    $notes = @($warning) + @($result.Skipped)
    if ($null -ne $found -and $null -ne $found.pool -and $null -ne $found.pool.settings.PSObject.Properties['processModel/identityType'] -and
        @('SpecificUser', '3') -contains [string]$found.pool.settings.'processModel/identityType') {
        $notes += "pool '$($found.pool.name)' is back with its user but not its password (never kept outside IIS): set it again"
    }
    $notes = @($notes | Where-Object { $_ })
    $after.restore_warning = if ($notes.Count -gt 0) { $notes -join '; ' } else { $null }
    Complete-Operation -State $after -Changed (@($result.Changes).Count -gt 0) -Changes @($result.Changes)
} finally {
    Exit-OwnersLock $lock
}
