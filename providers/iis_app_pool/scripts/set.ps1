param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_iis.ps1' %}
{% include '_common.ps1' %}

Import-IisAdministration
$name = [string]$Spec.name
$specificUser = [string]$Spec.identity_type -eq 'SpecificUser'

# The account must exist before anything changes: IIS itself would accept any name and the pool
# would only fail when it starts.
if ($specificUser -and $null -eq (Get-AccountSid ([string]$Spec.identity_user))) {
    Stop-Operation -Id 'IdentityNotMapped' -Category 'ObjectNotFound' -Property 'identity_user' -Message "the account '$($Spec.identity_user)' does not exist for this host (Some or all identity references could not be translated); create it or correct identity_user"
}

# Also before anything changes: the identity must be able to log on as a batch job, or the worker
# process never starts (Grant-BatchLogonRight).
$grantedBatchRight = $false
if ($specificUser) {
    $manager = New-Object Microsoft.Web.Administration.ServerManager
    try { $manualGroupMembership = Get-PoolManualGroupMembership $manager $name } finally { $manager.Dispose() }
    $grantedBatchRight = Grant-BatchLogonRight ([string]$Spec.identity_user) (Get-AccountSid ([string]$Spec.identity_user)) $manualGroupMembership
}

$result = Invoke-IisChange {
    param($manager)
    $changes = @()
    $pool = $manager.ApplicationPools[$name]
    if ($null -eq $pool) {
        $pool = $manager.ApplicationPools.Add($name)
        $changes += New-Change -Property 'ensure' -Before 'absent' -After 'present'
    }
    foreach ($setting in $PoolSettings) {
        $before = & $setting.Read $pool
        $desired = $Spec.($setting.Property)
        if ([string]$before -ne [string]$desired) {
            & $setting.Write $pool $desired
            $changes += New-Change -Property $setting.Property -Before $before -After $desired
        }
    }
    $identityType = [string]$pool.ProcessModel.IdentityType
    if ($identityType -ne [string]$Spec.identity_type) {
        $pool.ProcessModel.IdentityType = [string]$Spec.identity_type
        $changes += New-Change -Property 'identity_type' -Before $identityType -After ([string]$Spec.identity_type)
    }
    # A user name and password left behind by an earlier SpecificUser identity are cleared.
    $desiredUser = ''
    $desiredPassword = ''
    if ($specificUser) {
        $desiredUser = [string]$Spec.identity_user
        if ($null -ne $Spec.identity_password) { $desiredPassword = [string]$Spec.identity_password }
    }
    $user = [string]$pool.ProcessModel.UserName
    if ($user -ne $desiredUser) {
        $pool.ProcessModel.UserName = $desiredUser
        $changes += New-Change -Property 'identity_user' -Before $user -After $desiredUser
    }
    # The configuration system decrypts the stored password for an administrator: compare, never report it.
    if ([string]$pool.ProcessModel.Password -cne $desiredPassword) {
        $pool.ProcessModel.Password = $desiredPassword
        $changes += New-Change -Property 'identity_password' -Secret $true
    }
    $autoStart = [string]$Spec.state -eq 'Started'
    if ([bool]$pool.AutoStart -ne $autoStart) {
        $pool.AutoStart = $autoStart
        $changes += New-Change -Property 'auto_start' -Before (-not $autoStart) -After $autoStart
    }
    @{ Changes = $changes }
}
$changes = @($result.Changes)
if ($grantedBatchRight) { $changes += New-Change -Property 'logon_right' -Before $null -After $BatchLogonRight }

# The runtime state is WAS's, not configuration: start or stop after the commit.
$manager = New-Object Microsoft.Web.Administration.ServerManager
try {
    $pool = $manager.ApplicationPools[$name]
    $current = Get-IisObjectState { $pool.State }
    # A new identity takes effect in the next worker process; restart now so that a wrong password
    # fails this operation instead of the first request.
    $identityChanged = @($changes | Where-Object { @('identity_type', 'identity_user', 'identity_password') -contains $_.property }).Count -gt 0
    if ($identityChanged -and [string]$Spec.state -eq 'Started' -and $current -eq 'Started') {
        [void]$pool.Stop()
        $current = Wait-IisObjectState { $pool.State } @('Stopped')
    }
    if ([string]$Spec.state -eq 'Started' -and $current -ne 'Started') {
        # Start() may throw or return while WAS refuses the identity; the state read below decides.
        try { [void]$pool.Start() } catch { }
        $now = Wait-IisObjectState { $pool.State } @('Started', 'Stopped')
        if ($now -ne 'Started') {
            $property = 'identity_type'
            if ($specificUser) { $property = 'identity_password' }
            Stop-Operation -Id 'AppPoolStartFailed' -Property $property -Message "application pool '$name' did not start (state $now). With SpecificUser the usual cause is a wrong password or a user without 'Log on as a batch job' (System event log, WAS events 5021/5057); correct identity_user / identity_password"
        }
        $changes += New-Change -Property 'state' -Before $current -After 'Started'
    } elseif ([string]$Spec.state -eq 'Stopped' -and $current -ne 'Stopped') {
        [void]$pool.Stop()
        $now = Wait-IisObjectState { $pool.State } @('Stopped')
        $changes += New-Change -Property 'state' -Before $current -After $now
    }
    $after = Get-PoolState $manager $name
} finally {
    $manager.Dispose()
}
Complete-Operation -State $after -Changed ($changes.Count -gt 0) -Changes $changes
