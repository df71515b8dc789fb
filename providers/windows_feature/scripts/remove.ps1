param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_common.ps1' %}

# By default deleting the resource leaves the features alone: IIS and the RSAT tools are
# usually shared with other software on the server.
if (-not [bool]$Spec.uninstall_on_delete) {
    Complete-Operation -State ([ordered]@{ ensure = 'present'; names = @($Spec.names); kept = $true })
}

Assert-ServerManager
$catalog = Get-FeatureCatalog
$names = Resolve-FeatureName $catalog @($Spec.names)
$installed = @($names | Where-Object { Test-FeatureInstalled $catalog[$_] })
if ($installed.Count -eq 0) {
    Complete-Operation -State (Get-FeatureState $catalog $names)
}
# A failed uninstall is an error record (with 'Stop': a terminating error), not a result with
# Success = $false, so it is caught here to report it with its id.
try {
    $result = Uninstall-WindowsFeature -Name $installed
} catch {
    Stop-Operation -Id 'FeatureUninstallFailed' -Property 'names' -Message ("Uninstall-WindowsFeature " + ($installed -join ', ') + " failed: $($_.Exception.Message) See C:\Windows\Logs\DISM\dism.log")
}
if (-not $result.Success) {
    Stop-Operation -Id 'FeatureUninstallFailed' -Property 'names' -Message ("Uninstall-WindowsFeature " + ($installed -join ', ') + " failed with exit code $($result.ExitCode); see C:\Windows\Logs\DISM\dism.log")
}
$changes = New-Object System.Collections.ArrayList
foreach ($feature in @($result.FeatureResult)) {
    [void]$changes.Add((New-Change -Property 'installed' -Before ([string]$feature.Name) -After $null))
}
$after = Get-FeatureState (Get-FeatureCatalog) $names
if (Test-RestartNeeded $result) { $after.restart_pending = $true }
Complete-Operation -State $after -Changed ($changes.Count -gt 0) -Changes @($changes)
