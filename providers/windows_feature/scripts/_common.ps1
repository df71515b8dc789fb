# Helpers shared by the WindowsFeature scripts (ServerManager module: Windows Server only).

function Assert-ServerManager {
    $os = Get-CimInstance -ClassName Win32_OperatingSystem
    # ProductType 1 is a workstation: Windows 10/11 have optional features, not roles.
    if ([int]$os.ProductType -eq 1 -or -not (Get-Command -Name Get-WindowsFeature -ErrorAction SilentlyContinue)) {
        Stop-Operation -Id 'ServerManagerUnavailable' -Category 'NotImplemented' -Property 'names' -Message "WindowsFeature needs Windows Server (Install-WindowsFeature of the ServerManager module); this host runs '$($os.Caption)'. On a client OS use Enable-WindowsOptionalFeature instead."
    }
    Import-Module ServerManager
}

# A feature installed until the next restart has InstallState InstallPending and Installed = $false
# (Microsoft.Windows.ServerManager.Commands.Feature / InstallState, learn.microsoft.com); it counts as
# installed here, and restart_pending says the restart is still due.
function Test-FeatureInstalled($Feature) {
    return ([bool]$Feature.Installed -or [string]$Feature.InstallState -eq 'InstallPending')
}

# RestartNeeded of a FeatureOperationResult is a RestartState: No, Yes or Maybe (learn.microsoft.com,
# Install-WindowsFeature outputs); Maybe is a restart that may be due, so it is reported as pending.
function Test-RestartNeeded($Result) {
    return ([string]$Result.RestartNeeded -ne 'No')
}

function Get-FeatureCatalog {
    # One query for every feature: Get-WindowsFeature -Name silently skips unknown names.
    $catalog = @{}
    foreach ($feature in Get-WindowsFeature) { $catalog[$feature.Name] = $feature }
    return $catalog
}

function Resolve-FeatureName($Catalog, [string[]] $Names) {
    $unknown = @($Names | Where-Object { -not $Catalog.ContainsKey($_) })
    if ($unknown.Count -gt 0) {
        # The words Install-WindowsFeature itself uses for a name it does not know.
        Stop-Operation -Id 'FeatureNameNotValid' -Category 'InvalidArgument' -Property 'names' -Message ("ArgumentNotValid: The role, role service, or feature name is not valid: '" + ($unknown -join "', '") + "'. The name was not found. Use the Name column of Get-WindowsFeature.")
    }
    return , @($Names | ForEach-Object { [string]$Catalog[$_].Name })
}

function Get-FeatureState($Catalog, [string[]] $Names) {
    # installed: the named features and everything below them that is installed (role services, tools).
    $installed = New-Object 'System.Collections.Generic.SortedSet[string]' ([StringComparer]::OrdinalIgnoreCase)
    $queue = New-Object System.Collections.Queue
    foreach ($name in $Names) { $queue.Enqueue($name) }
    while ($queue.Count -gt 0) {
        $feature = $Catalog[[string]$queue.Dequeue()]
        if (Test-FeatureInstalled $feature) { [void]$installed.Add([string]$feature.Name) }
        foreach ($sub in @($feature.SubFeatures)) {
            if ($sub) { $queue.Enqueue($sub) }
        }
    }
    $pending = @($Catalog.Values | Where-Object { [string]$_.InstallState -in @('InstallPending', 'UninstallPending') }).Count -gt 0
    $rebootKey = Test-Path -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending'
    return [ordered]@{
        ensure = 'present'
        names = @($Names)
        installed_names = @($Names | Where-Object { Test-FeatureInstalled $Catalog[$_] })
        installed = @($installed)
        restart_pending = ($pending -or $rebootKey)
    }
}
