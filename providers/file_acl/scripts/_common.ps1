# Helpers shared by the FileAcl scripts.
#
# Why not Get-Acl / Set-Acl: Set-Acl writes back the whole descriptor it was given, owner and
# SACL included. Writing a SACL needs SeSecurityPrivilege, which a WinRM session does not enable,
# so Set-Acl fails ("Attempted to perform an unauthorized operation") or, on paths owned by
# TrustedInstaller, tries to change the owner. GetAccessControl('Access') reads only the DACL,
# and SetAccessControl persists only the sections that were modified: the DACL. Owner and SACL
# are never touched.
{% include '_accounts.ps1' %}
{% include '_dacl_lock.ps1' %}

function Resolve-Principal([string] $Principal) {
    try {
        $sid = ConvertTo-AccountSid $Principal
    } catch {
        # Translate's IdentityNotMappedException arrives wrapped in a MethodInvocationException.
        $reason = $_.Exception
        while ($null -ne $reason.InnerException) { $reason = $reason.InnerException }
        Stop-Operation -Id 'IdentityNotMapped' -Category 'ObjectNotFound' -Property 'principal' -Message (
            "principal '$Principal': $($reason.Message) Create the account first (a built-in one: give its SID, S-1-...); for 'IIS AppPool\<pool>' " +
            'the application pool must exist (make this resource depend on it).')
    }
    # A SID of a deleted account still names a valid entry: Windows shows it as the bare SID.
    $name = $sid.Value
    try { $name = $sid.Translate([System.Security.Principal.NTAccount]).Value } catch { $name = $sid.Value }
    return @{ Sid = $sid; Name = $name }
}

function Get-AclItem([string] $Path) {
    if (Test-Path -LiteralPath $Path -PathType Container) { return (New-Object System.IO.DirectoryInfo($Path)) }
    if (Test-Path -LiteralPath $Path -PathType Leaf) { return (New-Object System.IO.FileInfo($Path)) }
    return $null
}

function Get-AccessType([string] $Access) {
    if ($Access -eq 'Deny') { return [System.Security.AccessControl.AccessControlType]::Deny }
    return [System.Security.AccessControl.AccessControlType]::Allow
}

function ConvertTo-FlagNames($Flags) {
    return @(([string]$Flags).Split(',') | ForEach-Object { $_.Trim() } | Where-Object { $_ -and $_ -ne 'None' } | Sort-Object)
}

# The principal's explicit entries of one type. Inherited entries are never listed: they belong
# to the parent folder and cannot be changed here.
function Get-ExplicitEntries($Security, $Sid, [string] $Access) {
    $entries = @()
    $rules = $Security.GetAccessRules($true, $false, [System.Security.Principal.SecurityIdentifier])
    foreach ($rule in $rules) {
        if ($rule.IdentityReference.Value -ne $Sid.Value) { continue }
        if ([string]$rule.AccessControlType -ne $Access) { continue }
        $entries += [ordered]@{
            mask = ([long][int]$rule.FileSystemRights) -band [long]4294967295
            inheritance = @(ConvertTo-FlagNames $rule.InheritanceFlags)
            propagation = @(ConvertTo-FlagNames $rule.PropagationFlags)
            rule = $rule
        }
    }
    return ,$entries
}

# $Resolved: Resolve-Principal's result when the caller has it (set resolves once, before the lock).
function Get-FileAclState($Spec, $Resolved = $null) {
    $path = [string]$Spec.path
    $principal = $Resolved
    if ($null -eq $principal) { $principal = Resolve-Principal ([string]$Spec.principal) }
    $state = [ordered]@{
        ensure = 'absent'
        path = $path
        principal_sid = $principal.Sid.Value
        principal_name = $principal.Name
        is_container = $false
        entries = @()
        access_mask = $null
    }
    $item = Get-AclItem $path
    if ($null -eq $item) { return $state }
    $state.is_container = ($item -is [System.IO.DirectoryInfo])
    $security = $item.GetAccessControl([System.Security.AccessControl.AccessControlSections]::Access)
    $entries = Get-ExplicitEntries $security $principal.Sid ([string]$Spec.access)
    $state.entries = @($entries | ForEach-Object { [ordered]@{ mask = $_.mask; inheritance = $_.inheritance; propagation = $_.propagation } })
    if ($entries.Count -gt 0) {
        $state.ensure = 'present'
        $state.access_mask = $entries[0].mask
    }
    return $state
}

function Format-Entries($Entries) {
    return @($Entries | ForEach-Object {
        '0x{0:X} ({1}; {2})' -f [long]$_.mask, (@($_.inheritance) -join ',' -replace '^$', 'None'), (@($_.propagation) -join ',' -replace '^$', 'None')
    })
}
