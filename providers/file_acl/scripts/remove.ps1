param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_common.ps1' %}

# Only this principal's explicit entries of this type: other accounts' entries, this account's
# entries of the other type and every inherited entry stay.
$path = [string]$Spec.path
$item = Get-AclItem $path
if ($null -eq $item) {
    Complete-Operation -State ([ordered]@{ ensure = 'absent'; path = $path; entries = @() })
}
# The SID recorded when the entry was granted: the account may already be gone (a deleted pool),
# and its entry must still be removable.
$lookup = [string]$Spec.principal
if ($null -ne $Spec.principal_sid) { $lookup = [string]$Spec.principal_sid }
$sid = (Resolve-Principal $lookup).Sid
# From the read of the DACL to its write, no other FileAcl change on this host runs (Enter-DaclLock).
$daclLock = Enter-DaclLock
try {
    $security = $item.GetAccessControl([System.Security.AccessControl.AccessControlSections]::Access)
    $entries = Get-ExplicitEntries $security $sid ([string]$Spec.access)
    $state = [ordered]@{ ensure = 'absent'; path = $path; principal_sid = $sid.Value; entries = @() }
    if ($entries.Count -eq 0) {
        Complete-Operation -State $state
    }
    if (-not $security.AreAccessRulesCanonical) {
        # .NET's CommonAcl refuses to change a non-canonical DACL (InvalidOperationException "This access
        # control list is not in canonical form and therefore cannot be modified").
        Stop-Operation -Id 'AclNotCanonical' -Category 'InvalidData' -Property 'path' -Message "the access control list of '$($Spec.path)' is not in canonical order (an allow entry before a deny entry), so Windows cannot change it safely; open the folder's Properties > Security tab, which offers to reorder it, then run again"
    }
    foreach ($entry in $entries) {
        $security.RemoveAccessRuleSpecific($entry.rule)
    }
    $item.SetAccessControl($security)
    Complete-Operation -State $state -Changed $true -Changes @(
        New-Change -Property 'entries' -Before (Format-Entries $entries) -After @()
    )
} finally {
    Exit-DaclLock $daclLock
}
