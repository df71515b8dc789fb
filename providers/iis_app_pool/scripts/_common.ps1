# Helpers shared by the IisAppPool scripts.

# One table maps each plain property to how it is read from and written to a pool, so get and set
# stay in step and a new property is one entry. The identity is handled apart (user, secret password).
$PoolSettings = @(
    @{ Property = 'managed_runtime_version'
       Read = { param($p) [string]$p.ManagedRuntimeVersion }
       Write = { param($p, $v) $p.ManagedRuntimeVersion = [string]$v } }
    @{ Property = 'pipeline_mode'
       Read = { param($p) [string]$p.ManagedPipelineMode }
       Write = { param($p, $v) $p.ManagedPipelineMode = [string]$v } }
    @{ Property = 'start_mode'
       Read = { param($p) [string]$p.StartMode }
       Write = { param($p, $v) $p.StartMode = [string]$v } }
    @{ Property = 'idle_timeout_minutes'
       Read = { param($p) ConvertTo-Minutes $p.ProcessModel.IdleTimeout }
       Write = { param($p, $v) $p.ProcessModel.IdleTimeout = [TimeSpan]::FromMinutes([int]$v) } }
    @{ Property = 'load_user_profile'
       Read = { param($p) [bool]$p.ProcessModel.LoadUserProfile }
       Write = { param($p, $v) $p.ProcessModel.LoadUserProfile = [bool]$v } }
    @{ Property = 'periodic_restart_minutes'
       Read = { param($p) ConvertTo-Minutes $p.Recycling.PeriodicRestart.Time }
       Write = { param($p, $v) $p.Recycling.PeriodicRestart.Time = [TimeSpan]::FromMinutes([int]$v) } }
)

function ConvertTo-Minutes([TimeSpan] $Value) {
    # Whole minutes as an integer; anything else (set by hand, e.g. 00:20:30) as it is, so it shows as drift.
    if ($Value.TotalMinutes -eq [math]::Floor($Value.TotalMinutes)) { return [int]$Value.TotalMinutes }
    return $Value.TotalMinutes
}

function Get-PoolIdentityAccount($Pool) {
    switch ([string]$Pool.ProcessModel.IdentityType) {
        'ApplicationPoolIdentity' { return "IIS APPPOOL\$($Pool.Name)" }
        'NetworkService' { return 'NT AUTHORITY\NETWORK SERVICE' }
        'LocalSystem' { return 'NT AUTHORITY\SYSTEM' }
        'LocalService' { return 'NT AUTHORITY\LOCAL SERVICE' }
        default { return [string]$Pool.ProcessModel.UserName }
    }
}

function Get-AccountSid([string] $Account) {
    # $null when the name does not translate (IdentityNotMappedException).
    try {
        return (New-Object System.Security.Principal.NTAccount $Account).Translate([System.Security.Principal.SecurityIdentifier]).Value
    } catch {
        return $null
    }
}

function Get-PoolState($Manager, [string] $Name) {
    $pool = $Manager.ApplicationPools[$Name]
    if ($null -eq $pool) {
        return [ordered]@{ ensure = 'absent'; name = $Name }
    }
    $state = [ordered]@{ ensure = 'present'; name = $pool.Name }
    foreach ($setting in $PoolSettings) {
        $state[$setting.Property] = & $setting.Read $pool
    }
    $identityType = [string]$pool.ProcessModel.IdentityType
    $state.identity_type = $identityType
    $state.identity_user = $null
    if ($identityType -eq 'SpecificUser') { $state.identity_user = [string]$pool.ProcessModel.UserName }
    $state.state = Get-IisObjectState { $pool.State }
    $account = Get-PoolIdentityAccount $pool
    $state.identity_account = $account
    $state.identity_sid = Get-AccountSid $account
    return $state
}
