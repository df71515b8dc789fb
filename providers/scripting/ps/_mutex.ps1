# One machine-wide named mutex around a read-modify-write that several processes of the host may run at once
# (one stack's parallel operations, two stacks on one host), shared by the FileAcl scripts (their DACL lock)
# and _owners.ps1 (the ownership records). Global\ so that every process of the host shares it, whatever
# session it runs in (learn.microsoft.com, "Kernel object namespaces"; the default, Local\, is one per session).

# The mutex's own DACL: SYSTEM and the Administrators, whoever creates it. Without one it takes the
# creator's token default (learn.microsoft.com, "Synchronization Object Security and Access Rights"), which
# under the policy "Default owner for objects created by members of the Administrators group: Object
# creator" grants only the creating account, and another administrator's deployment could not open it.
function New-HostMutexSecurity {
    $security = New-Object System.Security.AccessControl.MutexSecurity
    foreach ($sid in @('S-1-5-18', 'S-1-5-32-544')) {
        $identity = New-Object System.Security.Principal.SecurityIdentifier $sid
        $security.AddAccessRule((New-Object System.Security.AccessControl.MutexAccessRule(
            $identity, [System.Security.AccessControl.MutexRights]::FullControl, [System.Security.AccessControl.AccessControlType]::Allow)))
    }
    return $security
}

# The mutex, held; $What names the lock in the errors ('FileAcl'), $Queued says who may be holding it.
# A wait longer than $WaitMs stops the operation with $BusyId rather than hanging it (a stuck holder).
function Enter-HostMutex([string] $Name, [int] $WaitMs, [string] $What, [string] $DeniedId, [string] $BusyId, [string] $Property, [string] $Queued) {
    $where = @{}
    if ($Property) { $where.Property = $Property }
    $created = $false
    try {
        $mutex = [System.Threading.Mutex]::new($false, $Name, [ref]$created, (New-HostMutexSecurity))
    } catch [System.UnauthorizedAccessException] {
        Stop-Operation -Id $DeniedId -Category 'PermissionDenied' @where -Message (
            "this account may not open the $What lock '$Name', which another account created without " +
            'granting the Administrators; run the deployment as a member of the local Administrators group')
    }
    $held = $false
    try {
        $held = $mutex.WaitOne($WaitMs)
    } catch [System.Threading.AbandonedMutexException] {
        # Its owner's thread or process ended without releasing it (a stopped powershell.exe): the wait
        # succeeded and this thread owns it now. What that owner left half done is the caller's to redo.
        $held = $true
    } catch {
        $mutex.Dispose()
        throw
    }
    if (-not $held) {
        $mutex.Dispose()
        Stop-Operation -Id $BusyId -Category 'ResourceBusy' @where -Message (
            "waited $($WaitMs / 1000) s for the $What lock '$Name' ($Queued); run again")
    }
    return $mutex
}

function Exit-HostMutex($Mutex) {
    # A Mutex belongs to the thread that acquired it: release in the same script, on the same thread (a
    # local RunspacePool runs each runspace's pipelines on its own thread: PSThreadOptions.ReuseThread).
    $Mutex.ReleaseMutex()
    $Mutex.Dispose()
}
