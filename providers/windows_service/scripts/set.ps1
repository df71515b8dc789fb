param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_owners.ps1' %}
{% include '_common.ps1' %}

$name = [string]$Spec.name
$owner = [string]$Spec.owner
if (-not $owner) {
    Stop-Operation -Id 'OwnerMissing' -Property 'owner' -Message 'the owner id is empty; the WindowsService resource sets it: declare the service through it'
}
$credential = Get-StartCredential ([string]$Spec.account) $Spec.password
$changes = New-Object System.Collections.ArrayList
$created = $false

# Ownership (review A3): a service is this resource's when it carries its marker (Set-OwnerMarker, right after Create).
# Between Create and the marker a kill leaves an unmarked service, so a record of the create under way is written
# BEFORE Create, in the project's owners records (%ProgramData%\UsercubeIac\Owners\WindowsService\creating, one per
# owner id: _owners.ps1), and deleted once the marker is there. A create adopts a service only when it carries this
# resource's marker, or carries none while that record names it and it is still as Create made it (program, display
# name, account, start mode; description and recovery actions none or the declared ones): the manual's `sc.exe create`
# by hand with the same values is refused. An update also accepts a service with no marker when the state is from
# before markers (previous_owner empty: an earlier version created it), and the marker of previous_owner (the
# resource's id changed): both get this resource's marker. Decided and stamped under the owners lock, so that two
# stacks creating the same name are decided one after the other.
$creatingFolder = Get-OwnersFolder 'WindowsService' 'creating'
$creatingPath = Get-OwnerRecordPath $creatingFolder $owner
$lock = Enter-OwnersLock
try {
    # The service is read here, under the lock, and decided on this reading only (review service6 S6-2). Every set.ps1
    # holds the lock from this read to its marker, so a reading taken before the wait could be stale both ways: absent
    # while another run of this same resource created and marked it (its Create would then answer 23 and refuse this
    # resource's own service), or unmarked in another stack's window between its Create and its marker (adopted on an
    # old record of this one, then re-marked). Read here, a 23 from Create can only come from a creator that takes no
    # lock, such as the manual's `sc.exe create` by hand.
    $before = Get-ServiceState $name

    # A service marked for deletion (a delete, such as the first half of a replace, while services.msc or
    # another program holds a handle to it) is still listed until that handle closes, and then goes:
    # adopting or configuring it would report success on a service about to vanish.
    if ($before.ensure -eq 'present' -and $before.marked_for_delete) {
        Stop-Operation -Id 'ServiceMarkedForDelete' -Property 'name' -Message (
            "service '$name' is marked for deletion (1072) and goes when the last handle to it closes; " +
            'close services.msc and every program holding the service open (or restart the host), then retry')
    }
    # Admin-only, and what others may have put there deleted (_admin_folders.ps1): these records decide an adoption.
    Initialize-OwnersFolder $creatingFolder
    if ($before.ensure -eq 'present' -and $before.owner_marker -cne $owner) {
        $marker = [string]$before.owner_marker
        $whose = if ($marker) { "carries the ownership marker of '$marker'" } else { 'carries no ownership marker' }
        if ([bool]$Spec.create) {
            # Create's StartMode below; 'AutomaticDelayedStart' is Automatic plus a registry value set after Create.
            $createMode = if ([string]$Spec.start_type -eq 'Manual') { 'Manual' } elseif ([string]$Spec.start_type -eq 'Disabled') { 'Disabled' } else { 'Automatic' }
            $beforeMode = if ([string]$before.start_type -eq 'AutomaticDelayedStart') { 'Automatic' } else { [string]$before.start_type }
            $noActionsKey = Get-FailureActionKey ([ordered]@{ actions = @(); reset_period_seconds = [long]0 })
            $creating = Read-OwnersJson $creatingPath
            $leftByOwnCreate = ($marker -eq '') -and ($null -ne $creating) -and ([string]$creating.name -eq $name) -and
                ([string]$before.image_path -ceq [string]$Spec.image_path) -and
                ([string]$before.display_name -ceq [string]$Spec.display_name) -and
                ([string]$before.account -eq [string]$Spec.account) -and
                ($beforeMode -eq $createMode) -and
                (@('', [string]$Spec.description) -ccontains [string]$before.description) -and
                (@($noActionsKey, (Get-FailureActionKey $Spec.failure_actions)) -ccontains (Get-FailureActionKey $before.failure_actions))
            if (-not $leftByOwnCreate) {
                Stop-Operation -Id 'ServiceExists' -Property 'name' -Message (
                    "service '$name' already exists (1073) and this resource did not create it: it $whose " +
                    "(HKLM\SYSTEM\CurrentControlSet\Services\$name, value $OwnerMarkerName), e.g. an agent installed by hand. " +
                    "Delete it (sc.exe stop $name, then sc.exe delete $name) and run ``up`` again to have it created here, or choose another name")
            }
        } else {
            $previous = [string]$Spec.previous_owner
            $fromBeforeMarkers = ($marker -eq '') -and ($previous -eq '')
            $moved = ($marker -ne '') -and ($marker -ceq $previous)
            if (-not ($fromBeforeMarkers -or $moved)) {
                Stop-Operation -Id 'ServiceNotOwned' -Property 'name' -Message (
                    "service '$name' is no longer the one this resource created: it $whose (deleted and installed again " +
                    'by someone else?). Delete it by hand and run `up --refresh` to have it created again, or choose another name')
            }
        }
        Set-OwnerMarker $name $owner
        [void]$changes.Add((New-Change -Property 'owner_marker' -Before $marker -After $owner))
    } elseif ($before.ensure -eq 'absent') {
        Write-OwnersJson $creatingPath ([ordered]@{ owner = $owner; name = $name })
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
        try {
            $createResult = Get-Win32ServiceResult -Method 'Create' -Arguments $arguments
        } catch {
            # No answer (a CIM error): Create may have run or not. Nothing of that name: it did not, and the record
            # goes; a service of that name keeps it, for the next create to compare with what Create makes.
            if ((Get-ServiceState $name).ensure -eq 'absent') { [System.IO.File]::Delete($creatingPath) }
            throw
        }
        if ($createResult -ne 0) {
            # Create answered and refused: it created nothing, whatever holds the name now (23, 1073: a service
            # installed since the read above, e.g. by hand with sc.exe create). The service control manager deletes a
            # partly made record when CreateService fails ("Delete partially created service record ...
            # ScDecrementUseCountAndDelete deletes the service record and the registry entry": NT5 RCreateServiceW,
            # base/screg/sc/server/cfgapi.cxx, its cleanup), and Win32_Service.Create's return values are
            # CreateService's errors (learn.microsoft.com, "Create method of the Win32_Service class": 23, Status
            # Service Exists); that the WMI provider itself leaves nothing behind is unverified. The record goes
            # before the error: kept, it would make the next create adopt that service as the one its own Create left
            # (review S1). Create's answer stays the error reported, also when the record cannot be deleted (an
            # antivirus scan holding the file open, review service6 S6-5): the message then names the file to delete.
            $recordLeft = ''
            try {
                [System.IO.File]::Delete($creatingPath)
            } catch {
                $failure = $_.Exception
                if ($null -ne $failure.InnerException) { $failure = $failure.InnerException }
                $recordLeft = "; and the record of this create under way could not be deleted ($($failure.Message)): " +
                    "delete $creatingPath by hand before the next ``up``, which would otherwise adopt the service that " +
                    'holds the name as the one its own Create left'
            }
            Assert-Win32ServiceResult -Method 'Create' -Code $createResult -Detail $recordLeft
        }
        # Created: the marker first, and only then (below) the record goes. A run broken off between the two leaves
        # the record, so that the next create adopts the unmarked service its own Create made.
        Set-OwnerMarker $name $owner
        [void]$changes.Add((New-Change -Property 'ensure' -Before 'absent' -After 'present'))
        $created = $true
    }
    # Marked (or already ours): the record of the create under way has done its job.
    [System.IO.File]::Delete($creatingPath)
} finally {
    Exit-OwnersLock $lock
}
$before = Get-ServiceState $name

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
