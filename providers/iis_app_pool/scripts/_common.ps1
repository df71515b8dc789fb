# Helpers shared by the IisAppPool scripts.
{% include '_user_rights.ps1' %}

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

# "Log on as a batch job" (SeBatchLogonRight). WAS logs a SpecificUser identity on as a batch logon
# (processModel logonType, default LogonBatch: learn.microsoft.com, IIS settings schema "processModel
# Element for add for applicationPools"; the project never sets logonType, so LogonBatch is assumed and
# LogonService's SeServiceLogonRight is not looked at). Unless processModel.manualGroupMembership is true,
# WAS adds IIS_IUSRS to the worker's token at logon (learn.microsoft.com, ProcessModelSettings class
# [IIS 7 and higher]: "A value of false means that the built-in IIS_IUSRS group membership will be used";
# LogonUserExExW's pTokenGroups adds groups to the token). IIS setup grants the right to IIS_IUSRS
# (learn.microsoft.com "Understanding Built-In User and Group Accounts in IIS"; serverfault.com/questions/949257),
# so a custom account works out of the box. Where a Group Policy has removed IIS_IUSRS from the right, the
# worker process cannot start: WAS events 5021/5059, the pool stops, requests get 503
# (nabeelabdulla.blogspot.com, SharePoint pools after a domain GPO). So the right is held when the account
# itself holds it, or IIS_IUSRS does and the pool uses its membership; a group of the account that holds it
# (e.g. Administrators) is not looked at, and the account is then given the right directly.
# "Deny log on as a batch job" (SeDenyBatchLogonRight) held by the account overrides any grant
# (learn.microsoft.com, "Deny log on as a batch job" security policy setting), which no grant can repair.
$BatchLogonRight = 'SeBatchLogonRight'
$DenyBatchLogonRight = 'SeDenyBatchLogonRight'
$IisIusrsSid = 'S-1-5-32-568'

# processModel.manualGroupMembership of the pool, or of applicationPoolDefaults for a pool not created yet
# (a pool that does not set it takes the defaults' value).
function Get-PoolManualGroupMembership($Manager, [string] $Name) {
    $pool = $Manager.ApplicationPools[$Name]
    if ($null -eq $pool) { return [bool]$Manager.ApplicationPoolDefaults.ProcessModel.GetAttributeValue('manualGroupMembership') }
    return [bool]$pool.ProcessModel.GetAttributeValue('manualGroupMembership')
}

function Stop-BatchLogonRightUnreadable([string] $Account, $ErrorRecord) {
    Stop-Operation -Id 'LogonRightUnreadable' -Property 'identity_user' -Message (
        "reading who holds 'Log on as a batch job' ($BatchLogonRight) for '$Account' failed: $(Get-LsaErrorText $ErrorRecord.Exception); " +
        'run the deployment as a local administrator')
}

function Test-BatchLogonRight([string] $Account, [string] $Sid, [bool] $ManualGroupMembership) {
    try {
        if (Test-AccountRight $Sid $BatchLogonRight) { return $true }
        return ((-not $ManualGroupMembership) -and (Test-AccountRight $IisIusrsSid $BatchLogonRight))
    } catch {
        Stop-BatchLogonRightUnreadable $Account $_
    }
}

function Test-BatchLogonDenied([string] $Account, [string] $Sid) {
    try {
        return [bool](Test-AccountRight $Sid $DenyBatchLogonRight)
    } catch {
        Stop-BatchLogonRightUnreadable $Account $_
    }
}

# $true when the right was granted to the account, $false when it already held it (Test-BatchLogonRight).
function Grant-BatchLogonRight([string] $Account, [string] $Sid, [bool] $ManualGroupMembership) {
    if (Test-BatchLogonDenied $Account $Sid) {
        Stop-Operation -Id 'LogonRightDenied' -Property 'identity_user' -Message (
            "'$Account' holds 'Deny log on as a batch job' ($DenyBatchLogonRight), which overrides 'Log on as a batch job', " +
            "so WAS cannot start the pool's worker process (events 5021/5059, HTTP 503); remove '$Account' from " +
            "'Deny log on as a batch job' in secpol.msc (Local Policies, User Rights Assignment) or in the Group Policy " +
            'that sets it, or give the pool another identity_user')
    }
    if (Test-BatchLogonRight $Account $Sid $ManualGroupMembership) { return $false }
    $missing = "neither '$Account' nor IIS_IUSRS holds 'Log on as a batch job' ($BatchLogonRight)"
    if ($ManualGroupMembership) {
        $missing = "'$Account' does not hold 'Log on as a batch job' ($BatchLogonRight) (IIS_IUSRS does not count: the pool sets processModel.manualGroupMembership)"
    }
    try {
        return Grant-AccountRight $Sid $BatchLogonRight
    } catch {
        Stop-Operation -Id 'LogonRightNotGranted' -Property 'identity_user' -Message (
            "$missing, so WAS cannot start the pool's worker " +
            "process (events 5021/5059, HTTP 503), and granting it to '$Account' failed: $(Get-LsaErrorText $_.Exception). " +
            "Grant it to '$Account' (or IIS_IUSRS) in secpol.msc (Local Policies, User Rights Assignment), or, where a domain Group " +
            'Policy sets "Log on as a batch job", in that policy: it replaces a local grant at the next policy refresh.')
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
    # For SpecificUser: whether WAS can log the identity on as a batch job (Test-BatchLogonRight, and no
    # Test-BatchLogonDenied); a Group Policy refresh may take the right away after the deployment, which
    # refresh then shows.
    $state.batch_logon_right = $null
    if ($identityType -eq 'SpecificUser' -and $null -ne $state.identity_sid) {
        $manual = Get-PoolManualGroupMembership $Manager $pool.Name
        $state.batch_logon_right = [bool]((Test-BatchLogonRight $account $state.identity_sid $manual) -and
            -not (Test-BatchLogonDenied $account $state.identity_sid))
    }
    return $state
}
