param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_iis.ps1' %}

# Reads only; every missing prerequisite is named with its remedy, and any one of them fails the check.
$problems = @()

$iisVersion = $null
$inetStp = Get-ItemProperty -LiteralPath 'HKLM:\SOFTWARE\Microsoft\InetStp' -ErrorAction SilentlyContinue
if ($null -ne $inetStp -and $null -ne $inetStp.PSObject.Properties['MajorVersion']) {
    $minor = 0
    if ($null -ne $inetStp.PSObject.Properties['MinorVersion']) { $minor = [int]$inetStp.MinorVersion }
    $iisVersion = "$([int]$inetStp.MajorVersion).$minor"
    if ([int]$inetStp.MajorVersion -lt [int]$Spec.minimum_iis_major) {
        $problems += "IIS $iisVersion is too old: the agent needs IIS $($Spec.minimum_iis_major).0 or newer (Windows Server 2016+)"
    }
} else {
    $problems += 'IIS is not installed: install the Web-Server feature (and Application Initialization)'
}

# The hosting bundle's ASP.NET Core runtime registers each version as
# HKLM:\SOFTWARE\Microsoft\ASP.NET Core\Shared Framework\v<major.minor>\<version>. That is the
# runtime the agent loads, in the 64-bit view that a 64-bit IIS worker uses; the Updates\.NET keys
# under WOW6432Node are Windows Update's servicing records, 32-bit and renamed between releases.
$bundleVersion = $null
$sharedFramework = 'HKLM:\SOFTWARE\Microsoft\ASP.NET Core\Shared Framework'
if (Test-Path -LiteralPath $sharedFramework) {
    foreach ($family in Get-ChildItem -LiteralPath $sharedFramework) {
        foreach ($release in Get-ChildItem -LiteralPath $family.PSPath) {
            $parsed = $null
            if ([version]::TryParse($release.PSChildName, [ref]$parsed)) {
                if ($null -eq $bundleVersion -or $parsed -gt [version]$bundleVersion) { $bundleVersion = $parsed.ToString() }
            }
        }
    }
}
if ($null -eq $bundleVersion) {
    $problems += "the .NET Hosting Bundle (ASP.NET Core Runtime $($Spec.minimum_hosting_bundle) or newer) is not installed: install it from https://dotnet.microsoft.com/download/dotnet"
} elseif ([version]$bundleVersion -lt [version]$Spec.minimum_hosting_bundle) {
    $problems += "the .NET Hosting Bundle $bundleVersion is older than $($Spec.minimum_hosting_bundle): install a newer one"
}

$modulePresent = $false
if ($null -ne $iisVersion) {
    Import-IisAdministration
    $manager = New-Object Microsoft.Web.Administration.ServerManager
    try {
        $modules = $manager.GetApplicationHostConfiguration().GetSection('system.webServer/globalModules').GetCollection()
        $modulePresent = @($modules | Where-Object { $_['name'] -eq 'AspNetCoreModuleV2' }).Count -gt 0
    } finally {
        $manager.Dispose()
    }
    if (-not $modulePresent -and $null -ne $bundleVersion) {
        $problems += 'the AspNetCoreModuleV2 IIS module is missing: repair the .NET Hosting Bundle (it was installed before IIS, so the AspNetCore module is missing); run its installer again and choose Repair'
    } elseif (-not $modulePresent) {
        $problems += 'the AspNetCoreModuleV2 IIS module is missing: install the .NET Hosting Bundle after IIS'
    }
}

if ($problems.Count -gt 0) {
    $property = $null
    if ($null -ne $bundleVersion -and [version]$bundleVersion -lt [version]$Spec.minimum_hosting_bundle) { $property = 'minimum_hosting_bundle' }
    Stop-Operation -Id 'PrerequisitesNotMet' -Category 'NotInstalled' -Property $property -Message ($problems -join '; ')
}
Complete-Operation -State ([ordered]@{
    ensure = 'present'
    iis_version = $iisVersion
    hosting_bundle_version = $bundleVersion
    aspnetcore_module_present = $modulePresent
})
