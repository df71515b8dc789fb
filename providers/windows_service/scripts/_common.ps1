# Helpers shared by the WindowsService scripts.
#
# Why CIM and not sc.exe or New-Service: the manual's `sc.exe create ... password= <secret>` puts
# the password on a command line, which process-creation auditing (event 4688) and EDR tools
# record. Win32_Service's Create/Change methods take it as a method argument inside this process
# instead. New-Service -Credential would avoid the command line too, but Windows PowerShell 5.1
# has no Set-Service -Credential, so a rotation would still need CIM: one mechanism for both.
# sc.exe is used only for what Win32_Service cannot set (delayed start, recovery actions); those
# command lines carry no secret.

{% include '_user_rights.ps1' %}
Add-Type -AssemblyName System.ServiceProcess

# Win32_Service method return values -> error id, the Win32 error Windows means, and the fix.
$Win32ServiceResults = @{
    2 = @('AccessDenied', 'Access is denied. (5)', 'run the deployment as a local administrator')
    9 = @('PathNotFound', 'The system cannot find the path specified. (3)', 'check binary_path')
    15 = @('ServiceLogonFailed', 'The service did not start due to a logon failure. (1069)', 'check the password')
    16 = @('ServiceMarkedForDelete', 'The specified service has been marked for deletion. (1072)', 'close services.msc and every program holding the service open, then retry')
    19 = @('DuplicateServiceName', 'The name is already in use as either a service name or a service display name. (1078)', 'choose another display_name')
    20 = @('InvalidServiceName', 'The filename, directory name, or volume label syntax is incorrect. (123)', 'choose another name')
    21 = @('InvalidParameter', 'The parameter is incorrect. (87)', 'check the values')
    22 = @('InvalidServiceAccount', 'The account name is invalid or does not exist, or the password is invalid for the account name specified. (1057)', 'create the account or fix its name')
    23 = @('ServiceExists', 'The specified service already exists. (1073)', 'choose another name, or delete the existing service')
}
$Win32ServiceProperty = @{ Create = 'name'; Delete = 'name'; Change = 'account' }

# The method's answer, its ReturnValue (0: done). A CIM error (no answer) is thrown as it comes.
function Get-Win32ServiceResult {
    param([string] $Method, [hashtable] $Arguments, $Service = $null)
    if ($null -eq $Service) {
        $result = Invoke-CimMethod -ClassName Win32_Service -MethodName $Method -Arguments $Arguments
    } else {
        $result = Invoke-CimMethod -InputObject $Service -MethodName $Method -Arguments $Arguments
    }
    return [int]$result.ReturnValue
}

# A ReturnValue other than 0 stops the operation with its id, the Win32 error it means and the fix (then -Detail).
function Assert-Win32ServiceResult {
    param([string] $Method, [int] $Code, [string] $Property = $null, [string] $Detail = '')
    if ($Code -eq 0) { return }
    if (-not $Property) { $Property = $Win32ServiceProperty[$Method] }
    $known = $Win32ServiceResults[$Code]
    if ($null -eq $known) { $known = @('ServiceMethodFailed', "unexpected return value $Code", 'see the Win32_Service documentation') }
    Stop-Operation -Id $known[0] -Property $Property -Message "Win32_Service.$Method returned ${Code}: $($known[1]); $($known[2])$Detail"
}

function Invoke-Win32ServiceMethod {
    param([string] $Method, [hashtable] $Arguments, $Service = $null, [string] $Property = $null)
    Assert-Win32ServiceResult -Method $Method -Code (Get-Win32ServiceResult -Method $Method -Arguments $Arguments -Service $Service) -Property $Property
}

# Errors of StartService / ControlService (a Win32Exception's NativeErrorCode) -> id and property.
$StartErrors = @{
    2 = @('ServiceBinaryNotFound', 'binary_path', 'put the agent runtime in place first')
    3 = @('ServiceBinaryNotFound', 'binary_path', 'put the agent runtime in place first')
    193 = @('ServiceBinaryNotValid', 'binary_path', 'binary_path must be a Windows program')
    1053 = @('ServiceStartTimeout', 'binary_path', 'the program did not answer the service control manager; check that it supports running as a service (--service)')
    1058 = @('ServiceDisabled', 'start_type', 'set start_type to Automatic or Manual')
    1069 = @('ServiceLogonFailed', 'password', 'check the password and that the account holds "Log on as a service" (SeServiceLogonRight)')
    1072 = @('ServiceMarkedForDelete', 'name', 'close services.msc and every program holding the service open (or restart the host), then retry')
    # The service record is gone (MS-SCMR 3.1.4.16 ROpenServiceW): another program deleted it during this run.
    1060 = @('ServiceDeleted', 'name', 'another program deleted the service during this run; find what deletes it, then `up --refresh` creates it again')
}

# Whether a Start() or Stop() that threw met another program doing the same between the read that decided it and
# the call: StartService answers ERROR_SERVICE_ALREADY_RUNNING (1056) for a service that is not stopped
# (learn.microsoft.com StartServiceW, Return value), ControlService(STOP) ERROR_SERVICE_NOT_ACTIVE (1062) for one that
# is (ControlService, Return value), and ServiceController throws them as the InnerException (a Win32Exception) of an
# InvalidOperationException (referencesource ServiceController.Start, Stop). Done only when the service is (or is on
# its way to) what was asked: 1056 also answers a service that is stopping or paused, and a 1062 from Stop()'s stop of
# a dependent leaves this one running; those stay failures.
function Test-ServiceControlRaced($Exception, [string] $Action, $Controller) {
    $raceCode = 1062
    $passing = @('Stopped', 'StopPending')
    if ($Action -eq 'Start') {
        $raceCode = 1056
        $passing = @('Running', 'StartPending')
    }
    $win32 = $Exception
    while ($null -ne $win32 -and $win32 -isnot [System.ComponentModel.Win32Exception]) { $win32 = $win32.InnerException }
    if ($null -eq $win32 -or $win32.NativeErrorCode -ne $raceCode) { return $false }
    $Controller.Refresh()
    return ($passing -contains [string]$Controller.Status)
}

# With -GoneIsStopped (remove.ps1 only) it outputs whether this call stopped the service: $false when the service was
# gone before it (another program stopped and deleted it first: Stop() itself meets 1060, from ServiceController's
# GenerateNames, NoService) or stopped before it (1062, Test-ServiceControlRaced), so that remove reports no change it
# did not make. Without the switch it outputs nothing.
function Invoke-ServiceControl {
    param([string] $Name, [ValidateSet('Start', 'Stop')] [string] $Action, [switch] $GoneIsStopped)
    $controller = New-Object System.ServiceProcess.ServiceController $Name
    $target = if ($Action -eq 'Start') { 'Running' } else { 'Stopped' }
    $sent = $false
    try {
        try {
            if ($Action -eq 'Start') { $controller.Start() } else { $controller.Stop() }
            $sent = $true
        } catch {
            # Another program did it first (Test-ServiceControlRaced): its wait below, as for our own call.
            if (-not (Test-ServiceControlRaced $_.Exception $Action $controller)) { throw }
        }
        $controller.WaitForStatus($target, [TimeSpan]::FromSeconds(60))
        if ($GoneIsStopped) { return $sent }
    } catch {
        $exception = $_.Exception
        while ($null -ne $exception) {
            if ($exception -is [System.ComponentModel.Win32Exception]) {
                $code = $exception.NativeErrorCode
                # Marking a service for deletion sets its start type to Disabled (MS-SCMR 3.1.4.3 RDeleteService),
                # and StartService checks Disabled first (ReactOS base/system/services/rpcserver.c RStartServiceW;
                # seen on Windows: Flowseal/zapret-discord-youtube#8521, #12070). So a start that races a deletion
                # answers 1058; its DeleteFlag, or its key already gone (the deletion finished since), tells it from a
                # Disabled start_type, and the error names the deletion instead of a start_type to change.
                if ($Action -eq 'Start' -and $code -eq 1058) {
                    $values = Get-ServiceKeyValues $Name
                    if ($null -eq $values) {
                        Stop-Operation -Id 'ServiceDeleted' -Property 'name' -Message (
                            "start of service '$Name' failed: it was deleted while being started ($code); " +
                            'find what deletes it, then `up --refresh` creates it again')
                    }
                    if (Test-DeleteFlag $values) {
                        Stop-Operation -Id 'ServiceMarkedForDelete' -Property 'name' -Message (
                            "start of service '$Name' failed: it is marked for deletion (DeleteFlag=1), which also made it Disabled ($code), " +
                            'and goes when the last handle to it closes; close services.msc and every program holding the service open ' +
                            '(or restart the host), then retry')
                    }
                }
                # A service marked for deletion goes once it is stopped and its last handle is closed (learn.microsoft.com
                # DeleteService, Remarks): WaitForStatus then finds no service to query (1060). For remove.ps1 (-GoneIsStopped)
                # that is the stop done; for any other caller the service it was to leave Stopped is gone: ServiceDeleted.
                if ($Action -eq 'Stop' -and $code -eq 1060 -and $GoneIsStopped) { return $sent }
                $known = $StartErrors[$code]
                if ($null -eq $known) { $known = @("Service${Action}Failed", 'state', 'see the System event log') }
                Stop-Operation -Id $known[0] -Property $known[1] -Message "$($Action.ToLower()) of service '$Name' failed: $($exception.Message) ($code); $($known[2])"
            }
            if ($exception -is [System.ServiceProcess.TimeoutException]) {
                Stop-Operation -Id "Service${Action}Timeout" -Property 'state' -Message "service '$Name' did not reach $target within 60 s; see the System event log"
            }
            $exception = $exception.InnerException
        }
        throw
    } finally {
        $controller.Dispose()
    }
}

function Get-StartCredential([string] $Account, $Password) {
    # Win32_Service names the built-in accounts this way; they take an empty password, and a
    # gMSA takes none at all (Windows fetches it from the domain).
    switch ($Account) {
        'LocalSystem' { return , @('LocalSystem', '') }
        'NetworkService' { return , @('NT AUTHORITY\NetworkService', '') }
        'LocalService' { return , @('NT AUTHORITY\LocalService', '') }
    }
    # The leading comma keeps PowerShell from unrolling the pair (and dropping a $null password).
    if ($Account.EndsWith('$')) { return , @($Account, $null) }
    return , @($Account, [string]$Password)
}

function Get-AccountSid([string] $Account) {
    switch ($Account) {
        'LocalSystem' { return 'S-1-5-18' }
        'LocalService' { return 'S-1-5-19' }
        'NetworkService' { return 'S-1-5-20' }
    }
    if ($Account.StartsWith('.\')) { $Account = $env:COMPUTERNAME + $Account.Substring(1) }
    try {
        return (New-Object System.Security.Principal.NTAccount $Account).Translate([System.Security.Principal.SecurityIdentifier]).Value
    } catch {
        return $null
    }
}

# "Log on as a service" (SeServiceLogonRight) for the service's account. Win32_Service.Create and
# Change do not grant it (services.msc does), and without it the first start fails with 1069
# (learn.microsoft.com, "Log on as a service" security policy setting). Granted through LSA
# (Grant-AccountRight, _user_rights.ps1).
function Grant-ServiceLogonRight([string] $Account) {
    $sid = Get-AccountSid $Account
    if ($null -eq $sid) {
        Stop-Operation -Id 'LogonRightNotGranted' -Property 'account' -Message (
            "cannot grant 'Log on as a service' (SeServiceLogonRight) to '$Account': the account does not resolve to a SID; create it first")
    }
    try {
        return Grant-AccountRight $sid 'SeServiceLogonRight'
    } catch {
        Stop-Operation -Id 'LogonRightNotGranted' -Property 'account' -Message (
            "granting 'Log on as a service' (SeServiceLogonRight) to '$Account' failed: $(Get-LsaErrorText $_.Exception) " +
            'Grant it in secpol.msc (Local Policies, User Rights Assignment) or in the Group Policy that sets it.')
    }
}

function Get-FailureActionState($Values) {
    # The registry value is SERVICE_FAILURE_ACTIONS as the service control manager stores it:
    # reset period, two string offsets, action count, array offset, then (type, delay ms) pairs.
    $actions = New-Object System.Collections.ArrayList
    $reset = 0
    $property = $Values.PSObject.Properties['FailureActions']
    if ($null -ne $property) {
        [byte[]] $bytes = $property.Value
        $reset = [BitConverter]::ToUInt32($bytes, 0)
        $count = [BitConverter]::ToUInt32($bytes, 12)
        for ($i = 0; $i -lt $count; $i++) {
            $offset = 20 + 8 * $i
            $type = [BitConverter]::ToUInt32($bytes, $offset)
            $delay = [BitConverter]::ToUInt32($bytes, $offset + 4)
            $kind = @('None', 'Restart', 'Reboot', 'RunCommand')[[Math]::Min($type, 3)]
            [void]$actions.Add([ordered]@{ action = $kind; delay_seconds = [int][Math]::Floor($delay / 1000) })
        }
    }
    return [ordered]@{ actions = @($actions); reset_period_seconds = [long]$reset }
}

function Get-ServiceState([string] $Name) {
    $filter = "Name='" + $Name.Replace('\', '\\').Replace("'", "\'") + "'"
    $service = Get-CimInstance -ClassName Win32_Service -Filter $filter
    if ($null -eq $service) {
        return [ordered]@{ ensure = 'absent'; name = $Name }
    }
    $values = Get-ServiceKeyValues ([string]$service.Name)
    if ($null -eq $values) {
        return [ordered]@{ ensure = 'absent'; name = $Name }  # it went between the two reads
    }
    $delayed = $values.PSObject.Properties['DelayedAutostart']
    $startType = switch ([string]$service.StartMode) {
        'Auto' { if ($null -ne $delayed -and [int]$delayed.Value -eq 1) { 'AutomaticDelayedStart' } else { 'Automatic' } }
        'Manual' { 'Manual' }
        'Disabled' { 'Disabled' }
        default { [string]$service.StartMode }
    }
    $account = switch ([string]$service.StartName) {
        'LocalSystem' { 'LocalSystem' }
        'NT AUTHORITY\SYSTEM' { 'LocalSystem' }
        'NT AUTHORITY\NetworkService' { 'NetworkService' }
        'NT AUTHORITY\LocalService' { 'LocalService' }
        default { [string]$service.StartName }
    }
    $serviceSid = $null
    try {
        $serviceSid = (New-Object System.Security.Principal.NTAccount "NT SERVICE\$($service.Name)").Translate([System.Security.Principal.SecurityIdentifier]).Value
    } catch {
        $serviceSid = $null
    }
    return [ordered]@{
        ensure = 'present'
        name = [string]$service.Name
        display_name = [string]$service.DisplayName
        image_path = [string]$service.PathName
        start_type = $startType
        account = $account
        description = [string]$service.Description
        failure_actions = (Get-FailureActionState $values)
        state = [string]$service.State
        service_sid = $serviceSid
        account_sid = (Get-AccountSid $account)
        marked_for_delete = (Test-DeleteFlag $values)
        owner_marker = (Get-OwnerMarker $values)
    }
}

# Who created the service: the owner id (providers/framework/ownership.py) that set.ps1 writes right after its Create,
# as a value of its own under the service's key. That key holds the service's configuration (learn.microsoft.com,
# "HKLM\SYSTEM\CurrentControlSet\Services registry tree") and goes with the service ("deleting the service key and
# its subkeys", DeleteService, Remarks), so a marker never outlives the service it marks: a service installed later
# under the same name (the manual's `sc.exe create`) carries none. Only SYSTEM and Administrators may write the key.
# Read StrictMode-safe, as DeleteFlag is: the value is absent on any service this project did not stamp.
$OwnerMarkerName = 'UsercubeIacOwner'

function Get-OwnerMarker($Values) {
    if ($null -eq $Values) { return '' }
    $marker = $Values.PSObject.Properties[$OwnerMarkerName]
    if ($null -eq $marker) { return '' }
    return [string]$marker.Value
}

function Set-OwnerMarker([string] $Name, [string] $Owner) {
    $key = "HKLM:\SYSTEM\CurrentControlSet\Services\$Name"
    [void](New-ItemProperty -LiteralPath $key -Name $OwnerMarkerName -PropertyType String -Value $Owner -Force)
}

# The values under the service's key, or $null once the key is gone. A service marked for deletion goes, "deleting
# the service key and its subkeys" (learn.microsoft.com DeleteService, Remarks), when its last handle closes, which
# can happen between Get-CimInstance and this read: under EAP=Stop that ItemNotFound would end the run with a
# generic error instead of "absent". Only a key that is gone means gone: if it is still there (a read refused for
# another reason) the error stops the script as before.
function Get-ServiceKeyValues([string] $Name) {
    $key = "HKLM:\SYSTEM\CurrentControlSet\Services\$Name"
    $values = Get-ItemProperty -LiteralPath $key -ErrorAction SilentlyContinue -ErrorVariable keyErrors
    if ($null -eq $values -and (Test-Path -LiteralPath $key)) {
        if ($keyErrors.Count -gt 0) { throw $keyErrors[0] }
        # Neither values nor an error: a key with no values at all (a real service key holds ImagePath, Type, Start).
        Stop-Operation -Id 'ServiceKeyUnreadable' -Property 'name' -Message (
            "the registry key of service '$Name' ($key) exists but holds no values; repair or delete the service by hand " +
            '(sc.exe delete), then retry')
    }
    return $values
}

# DeleteService only marks a service for deletion while a handle to it is open (services.msc, an EDR tool) or it
# runs: it stays listed, with DeleteFlag=1 under its key, until the last handle closes (learn.microsoft.com
# DeleteService, Remarks). Read the way DelayedAutostart is: the value is usually absent, and StrictMode forbids
# reading a missing property.
function Test-DeleteFlag($Values) {
    if ($null -eq $Values) { return $false }
    $deleteFlag = $Values.PSObject.Properties['DeleteFlag']
    return ($null -ne $deleteFlag -and [int]$deleteFlag.Value -eq 1)
}

function Get-ScStartType([string] $StartType) {
    switch ($StartType) {
        'Automatic' { return 'auto' }
        'AutomaticDelayedStart' { return 'delayed-auto' }
        'Manual' { return 'demand' }
        'Disabled' { return 'disabled' }
    }
    Stop-Operation -Id 'UnknownStartType' -Property 'start_type' -Message "unknown start type '$StartType'"
}

function Invoke-Sc {
    param([string] $Property, [string[]] $Arguments)
    # Only service names, start types and recovery actions pass here: never a secret.
    # In Windows PowerShell 5.1 a stderr line of a native program redirected with 2>&1 is an error
    # record, which the script's 'Stop' would turn into a terminating error before the exit code is
    # read (PowerShell/PowerShell#3996, #14273); in this function's scope it is only output.
    $ErrorActionPreference = 'Continue'
    $output = & sc.exe @Arguments 2>&1
    if ($LASTEXITCODE -ne 0) {
        Stop-Operation -Id 'ScFailed' -Property $Property -Message "sc.exe $($Arguments[0]) failed with $LASTEXITCODE`: $(($output | Out-String).Trim())"
    }
}

function ConvertTo-FailureActionText($FailureActions) {
    # sc.exe failure: action/delay-ms pairs joined by '/'; an empty action is 'take no action'.
    $parts = foreach ($item in @($FailureActions.actions)) {
        if ([string]$item.action -eq 'Restart') { 'restart' } elseif ([string]$item.action -eq 'Reboot') { 'reboot' } else { '' }
        [string]([long]$item.delay_seconds * 1000)
    }
    $text = $parts -join '/'
    # No actions is `actions= ""`. Windows PowerShell 5.1 drops an empty-string argument to a native
    # program (legacy argument passing: PowerShell/PowerShell#15143, #16639), so sc.exe would see
    # `actions=` with no value; the two quote characters reach it as one empty argument.
    if ($text -eq '') { return '""' }
    return $text
}

function Get-FailureActionKey($FailureActions) {
    $parts = foreach ($item in @($FailureActions.actions)) { "$($item.action):$($item.delay_seconds)" }
    return "$($FailureActions.reset_period_seconds);" + ($parts -join ',')
}
