param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_common.ps1' %}

$name = [string]$Spec.name
$credential = Get-StartCredential ([string]$Spec.account) $Spec.password
$changes = New-Object System.Collections.ArrayList
$before = Get-ServiceState $name
$created = $false

# A service marked for deletion (a delete, such as the first half of a replace, while services.msc or
# another program holds a handle to it) is still listed until that handle closes, and then goes:
# adopting or configuring it would report success on a service about to vanish.
if ($before.ensure -eq 'present' -and $before.marked_for_delete) {
    Stop-Operation -Id 'ServiceMarkedForDelete' -Property 'name' -Message (
        "service '$name' is marked for deletion (1072) and goes when the last handle to it closes; " +
        'close services.msc and every program holding the service open (or restart the host), then retry')
}

# On creation Win32_Service.Create runs even when the name is taken, so that Windows refuses with
# 'already exists' (1073) instead of this resource silently taking over a service it did not create.
# Except the service this resource's own Create makes: same program, display name, account and start mode,
# and a description and recovery actions that are Create's (none) or the declared ones (the steps below
# set them after Create). That one is what an interrupted run left (the CLI killed after Create, or
# Create's reply lost): it is adopted, and the steps after Create below bring it to the rest of what is
# declared. A service with any other description or recovery actions was not made by this script: refused.
$leftByOwnCreate = $false
if ($before.ensure -eq 'present') {
    # Create's StartMode below; 'AutomaticDelayedStart' is Automatic plus a registry value set after Create.
    $createMode = if ([string]$Spec.start_type -eq 'Manual') { 'Manual' } elseif ([string]$Spec.start_type -eq 'Disabled') { 'Disabled' } else { 'Automatic' }
    $beforeMode = if ([string]$before.start_type -eq 'AutomaticDelayedStart') { 'Automatic' } else { [string]$before.start_type }
    $noActionsKey = Get-FailureActionKey ([ordered]@{ actions = @(); reset_period_seconds = [long]0 })
    $leftByOwnCreate = ([string]$before.image_path -ceq [string]$Spec.image_path) -and
        ([string]$before.display_name -ceq [string]$Spec.display_name) -and
        ([string]$before.account -eq [string]$Spec.account) -and
        ($beforeMode -eq $createMode) -and
        (@('', [string]$Spec.description) -ccontains [string]$before.description) -and
        (@($noActionsKey, (Get-FailureActionKey $Spec.failure_actions)) -ccontains (Get-FailureActionKey $before.failure_actions))
}
if ($before.ensure -eq 'absent' -or ([bool]$Spec.create -and -not $leftByOwnCreate)) {
    $arguments = @{
        Name = $name
        DisplayName = [string]$Spec.display_name
        PathName = [string]$Spec.image_path
        ServiceType = [byte]16  # own process
        ErrorControl = [byte]1  # normal: log and continue booting
        StartMode = $(if ([string]$Spec.start_type -eq 'Manual') { 'Manual' } elseif ([string]$Spec.start_type -eq 'Disabled') { 'Disabled' } else { 'Automatic' })
        DesktopInteract = $false
        StartName = $credential[0]
    }
    if ($null -ne $credential[1]) { $arguments.StartPassword = $credential[1] }
    Invoke-Win32ServiceMethod -Method 'Create' -Arguments $arguments
    [void]$changes.Add((New-Change -Property 'ensure' -Before 'absent' -After 'present'))
    $created = $true
    $before = Get-ServiceState $name
}

# Configuration held by Win32_Service: one Change call for everything that differs.
$change = @{}
$reconfigured = $false
if ($before.display_name -cne [string]$Spec.display_name) {
    $change.DisplayName = [string]$Spec.display_name
    [void]$changes.Add((New-Change -Property 'display_name' -Before $before.display_name -After $Spec.display_name))
}
if ($before.image_path -cne [string]$Spec.image_path) {
    $change.PathName = [string]$Spec.image_path
    $reconfigured = $true
    [void]$changes.Add((New-Change -Property 'image_path' -Before $before.image_path -After $Spec.image_path))
}
if ($before.account -ne [string]$Spec.account -or ([bool]$Spec.apply_password -and -not $created)) {
    $change.StartName = $credential[0]
    if ($null -ne $credential[1]) { $change.StartPassword = $credential[1] }
    $reconfigured = $true
    if ($before.account -ne [string]$Spec.account) {
        [void]$changes.Add((New-Change -Property 'account' -Before $before.account -After $Spec.account))
    }
    if ($null -ne $Spec.password) {
        [void]$changes.Add((New-Change -Property 'password' -Secret $true))
    }
}
if ($change.Count -gt 0) {
    $filter = "Name='" + $name.Replace('\', '\\').Replace("'", "\'") + "'"
    $service = Get-CimInstance -ClassName Win32_Service -Filter $filter
    Invoke-Win32ServiceMethod -Method 'Change' -Service $service -Arguments $change
}

if ($before.start_type -ne [string]$Spec.start_type) {
    Invoke-Sc -Property 'start_type' -Arguments @('config', $name, 'start=', (Get-ScStartType ([string]$Spec.start_type)))
    if (-not $created) {
        [void]$changes.Add((New-Change -Property 'start_type' -Before $before.start_type -After $Spec.start_type))
    }
}
if ($before.description -cne [string]$Spec.description) {
    Set-Service -Name $name -Description ([string]$Spec.description)
    [void]$changes.Add((New-Change -Property 'description' -Before $before.description -After $Spec.description))
}
if ((Get-FailureActionKey $before.failure_actions) -ne (Get-FailureActionKey $Spec.failure_actions)) {
    $reset = [string]$Spec.failure_actions.reset_period_seconds
    Invoke-Sc -Property 'failure_actions' -Arguments @('failure', $name, 'reset=', $reset, 'actions=', (ConvertTo-FailureActionText $Spec.failure_actions))
    [void]$changes.Add((New-Change -Property 'failure_actions' -Before (Get-FailureActionKey $before.failure_actions) -After (Get-FailureActionKey $Spec.failure_actions)))
}

# Before any start: a custom account needs "Log on as a service" (Grant-ServiceLogonRight).
if (@('LocalSystem', 'NetworkService', 'LocalService') -notcontains [string]$Spec.account) {
    if (Grant-ServiceLogonRight ([string]$Spec.account)) {
        [void]$changes.Add((New-Change -Property 'logon_right' -Before $null -After 'SeServiceLogonRight'))
    }
}

# A running service keeps its old program and logon until it restarts.
if ([string]$Spec.state -eq 'Running') {
    if ($before.state -ne 'Running') {
        Invoke-ServiceControl -Name $name -Action 'Start'
        [void]$changes.Add((New-Change -Property 'state' -Before $before.state -After 'Running'))
    } elseif ($reconfigured) {
        Invoke-ServiceControl -Name $name -Action 'Stop'
        Invoke-ServiceControl -Name $name -Action 'Start'
        [void]$changes.Add((New-Change -Property 'state' -Before 'Running' -After 'Running (restarted)'))
    }
} elseif ($before.state -ne 'Stopped') {
    Invoke-ServiceControl -Name $name -Action 'Stop'
    [void]$changes.Add((New-Change -Property 'state' -Before $before.state -After 'Stopped'))
}

Complete-Operation -State (Get-ServiceState $name) -Changed ($changes.Count -gt 0) -Changes @($changes)
