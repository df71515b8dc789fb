param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_iis.ps1' %}
{% include '_common.ps1' %}

# Runs the installer when the host needs it: /install below the version asked for, /repair when IIS came after the
# bundle and AspNetCoreModuleV2 is missing (the manual's Finalize, step 1). Never restarts the host (/norestart).
$before = Get-BundleState $Spec
if ($before.action -eq 'none') {
    Complete-Operation -State $before
}
if ($before.action -eq 'blocked') {
    Stop-Operation -Id 'RepairNeedsInstalledVersion' -Category 'InvalidArgument' -Property 'version' -Message $before.reason
}
$root = Get-StagingRoot
Initialize-StagingFolder (Get-InstallerFolder $root ([string]$Spec.sha256))
Move-LegacyRestartRecord
$installer = Publish-StagedInstaller $Spec $root
Assert-NoInstallationRunning $Spec
$verb = '/install'
if ($before.action -eq 'repair') { $verb = '/repair' }
$log = [System.IO.Path]::Combine((Get-InstallerFolder $root ([string]$Spec.sha256)), 'install.log')
$treeListed = $true
$code = Invoke-Installer $installer ([string]$Spec.sha256) $verb $log ([int]$Spec.install_timeout_s) ([ref]$treeListed)
if ($null -eq $code) {
    $ended = 'and was ended, with the processes it started'
    if (-not $treeListed) {
        $ended = "and was ended, but the processes it started could not all be found (listing Win32_Process through WMI failed, or new ones still appeared at the last listing); its installer engine may still be running: check the host's processes before running up again"
    }
    Stop-Operation -Id 'InstallerTimedOut' -Category 'OperationTimeout' -Property 'install_timeout_s' -Message "$($Spec.installer_name) $verb did not finish within install_timeout_s ($($Spec.install_timeout_s) s) $ended; see $log, raise install_timeout_s if it needs longer, then run up again"
}
# Exit codes of Windows Installer, which a Burn bundle passes on (learn.microsoft.com, "MsiExec.exe and
# InstMsi.exe error messages"): 0 success, 3010 success with a restart required, 1641 a restart started,
# 1638 another version of the product is installed, 1618 another installation is running.
if ($code -eq 1618) {
    Stop-Operation -Id 'InstallerBusy' -Category 'ResourceBusy' -Message "$($Spec.installer_name) $verb exited with 1618 (ERROR_INSTALL_ALREADY_RUNNING): another installation is running on the host; run up again when it has finished"
}
if (@(0, 1638, 1641, 3010) -notcontains $code) {
    Stop-Operation -Id 'InstallerFailed' -Category 'InvalidResult' -Message "$($Spec.installer_name) $verb exited with $code (1603 is a fatal error of the installation); see the installer's log $log on the host"
}
# The installer's own restart request, a volatile key: get reports it until the host restarts.
if ($code -eq 3010 -or $code -eq 1641) { Write-RestartOwed $code }
$after = Get-BundleState $Spec
$after['last_action'] = $verb.TrimStart('/')
$after['exit_code'] = $code
if ($after.action -ne 'none') {
    $meaning = ''
    if ($code -eq 1638) { $meaning = ' (ERROR_PRODUCT_VERSION: another version of this product is already installed)' }
    Stop-Operation -Id 'InstallerDidNotInstall' -Category 'InvalidResult' -Property 'version' -Message "$($Spec.installer_name) $verb exited with $code$meaning, but the host still needs it: $($after.reason); see $log"
}
$changes = @()
if ($before.installed_version -ne $after.installed_version) {
    $changes += New-Change -Property 'installed_version' -Before $before.installed_version -After $after.installed_version
}
if ($before.aspnetcore_module_present -ne $after.aspnetcore_module_present) {
    $changes += New-Change -Property 'aspnetcore_module_present' -Before $before.aspnetcore_module_present -After $after.aspnetcore_module_present
}
Complete-Operation -State $after -Changed $true -Changes $changes
