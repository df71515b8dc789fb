param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_common.ps1' %}

Assert-ServerManager
$catalog = Get-FeatureCatalog
$names = Resolve-FeatureName $catalog @($Spec.names)
$before = Get-FeatureState $catalog $names
$missing = @($names | Where-Object { -not (Test-FeatureInstalled $catalog[$_]) })
# Management tools are an install option Get-WindowsFeature cannot relate to a feature: when they
# are asked for, Install-WindowsFeature runs (it installs only what is missing).
if ($missing.Count -eq 0 -and -not [bool]$Spec.include_management_tools) {
    Complete-Operation -State $before
}

$parameters = @{ Name = $names }
if ([bool]$Spec.include_management_tools) { $parameters.IncludeManagementTools = $true }
# A failed install is an error record (with 'Stop': a terminating error), not a result with
# Success = $false, so it is caught here to report it with its id.
try {
    $result = Install-WindowsFeature @parameters
} catch {
    Stop-Operation -Id 'FeatureInstallFailed' -Property 'names' -Message ("Install-WindowsFeature " + ($names -join ', ') + " failed: $($_.Exception.Message) See C:\Windows\Logs\DISM\dism.log")
}
if (-not $result.Success) {
    Stop-Operation -Id 'FeatureInstallFailed' -Property 'names' -Message ("Install-WindowsFeature " + ($names -join ', ') + " failed with exit code $($result.ExitCode); see C:\Windows\Logs\DISM\dism.log")
}
$changes = New-Object System.Collections.ArrayList
foreach ($feature in @($result.FeatureResult)) {
    [void]$changes.Add((New-Change -Property 'installed' -Before $null -After ([string]$feature.Name)))
}
$after = Get-FeatureState (Get-FeatureCatalog) $names
if (Test-RestartNeeded $result) { $after.restart_pending = $true }
Complete-Operation -State $after -Changed ($changes.Count -gt 0) -Changes @($changes)
