# The lock around every read-modify-write of a DACL by this project: FileAcl's entries and SettingsFile's
# protected permissions (included after prelude.ps1).
#
# Two writers of one DACL lose an entry: GetAccessControl returns a copy, and SetAccessControl writes
# that whole copy back (NativeObjectSecurity.Persist calls SetNamedSecurityInfoW with
# DACL_SECURITY_INFORMATION, whose pDacl replaces the object's DACL and then pushes its inheritable entries
# down the tree: learn.microsoft.com, "Automatic Propagation of Inheritable ACEs"). Entries another writer
# added after the copy was read are gone. Two FileAcl resources on one folder (one stack's parallel
# operations, or two stacks on one host) do exactly that. The push down the tree is a read-modify-write of
# each child done in user mode, so a SettingsFile that protects a file under a FileAcl-managed folder while
# that folder's entries are being pushed can get its new DACL overwritten with the old, inheriting one.
# So each of those writes takes one machine-wide named mutex (_mutex.ps1) around its read-modify-write;
# the principal is resolved before the lock (an LSA lookup of a domain account can be slow).
#
# The wait: one holder may push entries through a whole working directory (thousands of files), and one
# stack runs up to 32 operations at once, a second stack on the host as many: 30 s was too short for a
# healthy queue. It comes in the input (dacl_lock_wait_ms): min(300 s, command_timeout_s / 2), from the
# connection (providers/scripting/host_locks.py), so AclBusy arrives before the client gives up whatever
# command_timeout_s is (it may be as low as 1 s). Each operation takes the lock once (SettingsFile set: once
# for the file and its backup), so the wait is counted once against that deadline. An input without it (a
# payload from before the key) waits 300 s, the value for the default command_timeout_s of 600 s.
#
# An abandoned mutex (its owner's powershell.exe ended without releasing it) is taken over: the owner may
# have been stopped while SetNamedSecurityInfoW was pushing entries down the tree, and nothing here pushes
# them again. A later write of that folder (or of an ancestor) does; FileAcl get compares only the path's
# own entries, so it does not see children left half done.
{% include '_mutex.ps1' %}

$DaclMutexName = 'Global\UsercubeIac.FileAcl.Dacl'
$DaclLockWaitMs = 300000
if ($null -ne $Spec.PSObject.Properties['dacl_lock_wait_ms']) { $DaclLockWaitMs = [int]$Spec.dacl_lock_wait_ms }
# Raising command_timeout_s lengthens the wait only while it is below the 300 s cap (review-locks2 K5).
$DaclLockFix = 'run again'
if ($DaclLockWaitMs -lt 300000) { $DaclLockFix = 'run again, or raise the connection''s command_timeout_s: the wait is half of it, 300 s at most' }

function Enter-DaclLock {
    return (Enter-HostMutex -Name $DaclMutexName -WaitMs $DaclLockWaitMs -What 'permissions' -DeniedId 'AclLockDenied' -BusyId 'AclBusy' -Property 'path' -Queued 'other FileAcl or SettingsFile permission changes on this host were queued, or one is hung' -Fix $DaclLockFix)
}

function Exit-DaclLock($Mutex) {
    Exit-HostMutex $Mutex
}
