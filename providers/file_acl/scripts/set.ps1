param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_common.ps1' %}

$path = [string]$Spec.path
$item = Get-AclItem $path
if ($null -eq $item) {
    Stop-Operation -Id 'PathNotFound' -Category 'ObjectNotFound' -Property 'path' -Message (
        "Could not find a part of the path '$path'. Create the folder first (a Directory resource) " +
        'and make this entry depend on it.')
}
$isContainer = $item -is [System.IO.DirectoryInfo]
$inheritance = @()
if ($null -ne $Spec.inheritance) {
    $inheritance = @($Spec.inheritance | Sort-Object)
} elseif ($isContainer) {
    $inheritance = @('ContainerInherit', 'ObjectInherit')
}
$propagation = @($Spec.propagation | Sort-Object)
if (-not $isContainer -and ($inheritance.Count -gt 0 -or $propagation.Count -gt 0)) {
    # .NET refuses these flags on a file with "No flags can be set."; say which property to change.
    Stop-Operation -Id 'InheritanceOnFile' -Category 'InvalidArgument' -Property 'inheritance' -Message (
        "'$path' is a file, and a file's entry cannot be inherited (No flags can be set.): " +
        'leave inheritance unset (or empty) and propagation empty.')
}
if ($inheritance.Count -eq 0 -and $propagation.Count -gt 0) {
    # .NET would refuse it in AddAccessRule ("No flags can be set."); say which property to change.
    Stop-Operation -Id 'PropagationWithoutInheritance' -Category 'InvalidArgument' -Property 'propagation' -Message (
        'propagation flags need inheritance flags: set inheritance or leave propagation empty.')
}

$principal = Resolve-Principal ([string]$Spec.principal)
# From the first read of the DACL to its write, no other FileAcl change on this host runs (Enter-DaclLock).
$daclLock = Enter-DaclLock
try {
    $before = Get-FileAclState $Spec $principal
    $desiredMask = [long]$Spec.mask
    $matching = @($before.entries | Where-Object {
        (ConvertTo-ComparableMask $_.mask) -eq $desiredMask -and
        (@($_.inheritance) -join ',') -eq ($inheritance -join ',') -and
        (@($_.propagation) -join ',') -eq ($propagation -join ',')
    })
    if ($before.entries.Count -eq 1 -and $matching.Count -eq 1) {
        Complete-Operation -State $before
    }

    # Replace this principal's explicit entries of this type by exactly one: AddAccessRule alone would
    # merge the new rights into an existing entry with the same flags instead of setting them.
    $type = Get-AccessType ([string]$Spec.access)
    $security = $item.GetAccessControl([System.Security.AccessControl.AccessControlSections]::Access)
    if (-not $security.AreAccessRulesCanonical) {
        # .NET's CommonAcl refuses to change a non-canonical DACL (InvalidOperationException "This access
        # control list is not in canonical form and therefore cannot be modified").
        Stop-Operation -Id 'AclNotCanonical' -Category 'InvalidData' -Property 'path' -Message "the access control list of '$($Spec.path)' is not in canonical order (an allow entry before a deny entry), so Windows cannot change it safely; open the folder's Properties > Security tab, which offers to reorder it, then run again"
    }
    foreach ($entry in (Get-ExplicitEntries $security $principal.Sid ([string]$Spec.access))) {
        $security.RemoveAccessRuleSpecific($entry.rule)
    }
    $inheritanceFlags = [System.Security.AccessControl.InheritanceFlags]::None
    if ($inheritance.Count -gt 0) { $inheritanceFlags = [System.Security.AccessControl.InheritanceFlags]($inheritance -join ', ') }
    $propagationFlags = [System.Security.AccessControl.PropagationFlags]::None
    if ($propagation.Count -gt 0) { $propagationFlags = [System.Security.AccessControl.PropagationFlags]($propagation -join ', ') }
    $rule = New-Object System.Security.AccessControl.FileSystemAccessRule(
        $principal.Sid, [System.Security.AccessControl.FileSystemRights][int]$desiredMask, $inheritanceFlags, $propagationFlags, $type)
    $security.AddAccessRule($rule)
    $item.SetAccessControl($security)

    $after = Get-FileAclState $Spec $principal
    Complete-Operation -State $after -Changed $true -Changes @(
        New-Change -Property 'entries' -Before (Format-Entries $before.entries) -After (Format-Entries $after.entries)
    )
} finally {
    Exit-DaclLock $daclLock
}
