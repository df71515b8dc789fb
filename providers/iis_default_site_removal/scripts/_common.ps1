# Helpers shared by the IisDefaultSiteRemoval scripts.

function Get-DefaultsState($Manager) {
    $sitePresent = $null -ne $Manager.Sites[[string]$Spec.site_name]
    $poolPresent = $null -ne $Manager.ApplicationPools[[string]$Spec.pool_name]
    $ensure = 'absent'
    if (-not $sitePresent -and -not $poolPresent) { $ensure = 'present' }  # present = the removal holds
    return [ordered]@{ ensure = $ensure; site_present = $sitePresent; pool_present = $poolPresent }
}
