# One machine-wide named mutex around a read-modify-write that several processes of the host may run at once
# (one stack's parallel operations, two stacks on one host), shared by _dacl_lock.ps1 (the FileAcl and
# SettingsFile DACL writes) and _owners.ps1 (the ownership records). Global\ so that every process of the host shares it, whatever
# session it runs in (learn.microsoft.com, "Kernel object namespaces"; the default, Local\, is one per session).

# The mutex's own DACL: SYSTEM and the Administrators, whoever creates it. Without one it takes the
# creator's token default (learn.microsoft.com, "Synchronization Object Security and Access Rights"), which
# under the policy "Default owner for objects created by members of the Administrators group: Object
# creator" grants only the creating account, and another administrator's deployment could not open it.
# Owned by the Administrators too, whoever creates it (an elevated administrator's and SYSTEM's tokens may
# name that group as owner: SE_GROUP_OWNER), so that under the same policy another administrator's
# deployment, finding it open, trusts it (Get-HostMutexUntrustedReason).
function New-HostMutexSecurity {
    $security = New-Object System.Security.AccessControl.MutexSecurity
    $security.SetOwner((New-Object System.Security.Principal.SecurityIdentifier 'S-1-5-32-544'))
    foreach ($sid in @('S-1-5-18', 'S-1-5-32-544')) {
        $identity = New-Object System.Security.Principal.SecurityIdentifier $sid
        $security.AddAccessRule((New-Object System.Security.AccessControl.MutexAccessRule(
            $identity, [System.Security.AccessControl.MutexRights]::FullControl, [System.Security.AccessControl.AccessControlType]::Allow)))
    }
    return $security
}

# Creating a mutex in Global\ needs no privilege (only file mappings there need SeCreateGlobalPrivilege:
# learn.microsoft.com, "Kernel object namespaces"), so any local account, the agent's own identity included,
# can create the name first ("Object Namespaces" recommends private namespaces against exactly this). Such
# a squatter could hold it for ever or wait for the moment it likes. A mutex opened, or created, is trusted
# only when its owner is SYSTEM, the Administrators or this script's own account: the owner of a kernel
# object is its creator's token owner (learn.microsoft.com, "Default DACLs and owners"; an elevated
# administrator's is the Administrators group or the account itself), and GetAccessControl reads it with the
# READ_CONTROL that the MUTEX_ALL_ACCESS handle CreateMutex opens an existing mutex with includes.
function Get-HostMutexUntrustedReason($Mutex) {
    try {
        $owner = $Mutex.GetAccessControl().GetOwner([System.Security.Principal.SecurityIdentifier]).Value
    } catch [System.UnauthorizedAccessException] {
        # .NET opened it with MUTEX_MODIFY_STATE | SYNCHRONIZE only (its fallback when CreateMutex is denied
        # full access): the mutex's DACL withholds READ_CONTROL from this account.
        return 'does not let this account read its owner'
    }
    $identity = [System.Security.Principal.WindowsIdentity]::GetCurrent()
    try { $self = $identity.User.Value } finally { $identity.Dispose() }
    if (@('S-1-5-18', 'S-1-5-32-544', $self) -contains $owner) { return $null }
    return "is owned by $owner, not by SYSTEM, the Administrators or this account"
}

function Stop-HostMutexUntrusted([string] $Name, [string] $What, [string] $Reason, [hashtable] $Where) {
    Stop-Operation -Id 'HostLockUntrusted' -Category 'SecurityError' @Where -Message (
        "the $What lock '$Name' ${Reason}: a process of another account created that name first and could hold it " +
        'or release it at will. Find the process that has it open (Sysinternals handle.exe -a UsercubeIac, or ' +
        "Process Explorer's Find Handle), end it, and run again")
}

# The mutex, held; $What names the lock in the errors ('permissions'), $Queued says who may be holding it,
# $Fix what to do about a busy lock. A wait longer than $WaitMs stops the operation with $BusyId rather than
# hanging it (a stuck holder).
function Enter-HostMutex([string] $Name, [int] $WaitMs, [string] $What, [string] $DeniedId, [string] $BusyId, [string] $Property, [string] $Queued, [string] $Fix = 'run again') {
    $where = @{}
    if ($Property) { $where.Property = $Property }
    $created = $false
    try {
        $mutex = [System.Threading.Mutex]::new($false, $Name, [ref]$created, (New-HostMutexSecurity))
    } catch [System.UnauthorizedAccessException] {
        Stop-Operation -Id $DeniedId -Category 'PermissionDenied' @where -Message (
            "this account may not open the $What lock '$Name', which another account created without " +
            'granting the Administrators (an earlier version of this project, or a process that took the name ' +
            'first); run the deployment as a member of the local Administrators group, or find the process ' +
            "that has it open (Sysinternals handle.exe -a UsercubeIac), end it, and run again")
    } catch [System.Threading.WaitHandleCannotBeOpenedException] {
        # CreateMutex's ERROR_INVALID_HANDLE: the name belongs to another kind of object (an event, a semaphore).
        Stop-HostMutexUntrusted $Name $What 'is taken by another kind of named object (not a mutex)' $where
    }
    try {
        $untrusted = Get-HostMutexUntrustedReason $mutex
    } catch {
        # Any other failure to read its owner (an IOException of GetSecurityInfo): the handle is not left open
        # (review-locks L3); the error goes on to the trap.
        $mutex.Dispose()
        throw
    }
    if ($null -ne $untrusted) {
        $mutex.Dispose()
        Stop-HostMutexUntrusted $Name $What $untrusted $where
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
            "waited $($WaitMs / 1000) s for the $What lock '$Name' ($Queued); $Fix")
    }
    return $mutex
}

function Exit-HostMutex($Mutex) {
    # A Mutex belongs to the thread that acquired it: release in the same script, on the same thread (a
    # local RunspacePool runs each runspace's pipelines on its own thread: PSThreadOptions.ReuseThread).
    $Mutex.ReleaseMutex()
    $Mutex.Dispose()
}
