# Accounts and access masks, as every script that writes a DACL needs them (FileAcl, SettingsFile).

# Windows' generic mapping for files (FILE_GENERIC_READ/WRITE/EXECUTE/ALL, learn.microsoft.com "File Security
# and Access Rights"): icacls (GR) and other tools may leave generic bits, which mean the same access. Int64
# keys: 0x80000000 is negative as an Int32 literal in Windows PowerShell.
$GenericFileRights = @(
    @([long]2147483648, 0x120089),
    @([long]1073741824, 0x120116),
    @([long]536870912, 0x1200A0),
    @([long]268435456, 0x1F01FF)
)
$SynchronizeRight = [long]0x100000

# A mask as it compares: generic bits mapped, Synchronize dropped. .NET's FileSystemAccessRule adds
# Synchronize to every allow entry, so keeping it would be an eternal difference.
function ConvertTo-ComparableMask([long] $Mask) {
    $value = $Mask -band [long]4294967295
    foreach ($pair in $GenericFileRights) {
        if ($value -band $pair[0]) { $value = ($value -band (-bnot $pair[0])) -bor $pair[1] }
    }
    return ($value -band (-bnot $SynchronizeRight))
}

# The English names of the well-known accounts, as SIDs. Windows localizes these names ('NT-AUTORITÄT\SYSTEM',
# 'VORDEFINIERT\Administratoren' on a German server), so NTAccount.Translate of the English name fails there
# (IdentityNotMapped, error 1332); the SIDs are the same on every Windows (learn.microsoft.com, "Well-known
# SIDs"). 'IIS AppPool\<pool>' and 'NT SERVICE\<service>' are not localized.
# The service manager's names of the built-in service accounts (LocalSystem, NetworkService, LocalService:
# what the WindowsService resource passes for a service-hosted agent) are not account names LookupAccountName
# knows, so they are mapped here too; so are IIS_IUSRS and IUSR, whose domain part is localized.
# Keys compare ordinally without case: a hashtable literal's comparer in Windows PowerShell 5.1 is
# CurrentCultureIgnoreCase, under which 'i' and 'I' are no pair in tr-TR or az (PowerShell/PowerShell#8280; 7.x
# moved to OrdinalIgnoreCase in PR #8566).
$WellKnownAccountSids = [hashtable]::new(@{
    'NT AUTHORITY\SYSTEM' = 'S-1-5-18'; 'SYSTEM' = 'S-1-5-18'; 'LocalSystem' = 'S-1-5-18'
    'NT AUTHORITY\LOCAL SERVICE' = 'S-1-5-19'; 'LOCAL SERVICE' = 'S-1-5-19'; 'LocalService' = 'S-1-5-19'; 'NT AUTHORITY\LocalService' = 'S-1-5-19'
    'NT AUTHORITY\NETWORK SERVICE' = 'S-1-5-20'; 'NETWORK SERVICE' = 'S-1-5-20'; 'NetworkService' = 'S-1-5-20'; 'NT AUTHORITY\NetworkService' = 'S-1-5-20'
    'NT AUTHORITY\Authenticated Users' = 'S-1-5-11'; 'Authenticated Users' = 'S-1-5-11'
    'NT AUTHORITY\IUSR' = 'S-1-5-17'; 'IUSR' = 'S-1-5-17'
    'NT AUTHORITY\SERVICE' = 'S-1-5-6'; 'SERVICE' = 'S-1-5-6'
    'NT AUTHORITY\NETWORK' = 'S-1-5-2'; 'NETWORK' = 'S-1-5-2'
    'NT AUTHORITY\INTERACTIVE' = 'S-1-5-4'; 'INTERACTIVE' = 'S-1-5-4'
    'NT AUTHORITY\BATCH' = 'S-1-5-3'; 'BATCH' = 'S-1-5-3'
    'NT AUTHORITY\ANONYMOUS LOGON' = 'S-1-5-7'; 'ANONYMOUS LOGON' = 'S-1-5-7'
    'CREATOR OWNER' = 'S-1-3-0'; 'OWNER RIGHTS' = 'S-1-3-4'
    'BUILTIN\Administrators' = 'S-1-5-32-544'; 'Administrators' = 'S-1-5-32-544'
    'BUILTIN\Users' = 'S-1-5-32-545'; 'Users' = 'S-1-5-32-545'
    'BUILTIN\Guests' = 'S-1-5-32-546'; 'Guests' = 'S-1-5-32-546'
    'BUILTIN\Backup Operators' = 'S-1-5-32-551'; 'Backup Operators' = 'S-1-5-32-551'
    'BUILTIN\Remote Desktop Users' = 'S-1-5-32-555'; 'Remote Desktop Users' = 'S-1-5-32-555'
    'BUILTIN\Performance Monitor Users' = 'S-1-5-32-558'; 'Performance Monitor Users' = 'S-1-5-32-558'
    'BUILTIN\Performance Log Users' = 'S-1-5-32-559'; 'Performance Log Users' = 'S-1-5-32-559'
    'BUILTIN\IIS_IUSRS' = 'S-1-5-32-568'; 'IIS_IUSRS' = 'S-1-5-32-568'
    'BUILTIN\Event Log Readers' = 'S-1-5-32-573'; 'Event Log Readers' = 'S-1-5-32-573'
    'APPLICATION PACKAGE AUTHORITY\ALL APPLICATION PACKAGES' = 'S-1-15-2-1'; 'ALL APPLICATION PACKAGES' = 'S-1-15-2-1'
    'Everyone' = 'S-1-1-0'
}, [System.StringComparer]::OrdinalIgnoreCase)

# An account's SID: given as a SID, a well-known English name, or a name Windows translates (throws
# IdentityNotMappedException, wrapped, otherwise).
function ConvertTo-AccountSid([string] $Name) {
    if ($Name -match '^S-1-') { return (New-Object System.Security.Principal.SecurityIdentifier($Name)) }
    if ($WellKnownAccountSids.ContainsKey($Name)) { return (New-Object System.Security.Principal.SecurityIdentifier($WellKnownAccountSids[$Name])) }
    return (New-Object System.Security.Principal.NTAccount($Name)).Translate([System.Security.Principal.SecurityIdentifier])
}
