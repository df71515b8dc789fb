# Folders only SYSTEM and Administrators may use, under %ProgramData%\UsercubeIac (included after prelude.ps1):
# the staging folders of the chunked uploads (_upload.ps1) and the ownership records (_owners.ps1). Each kind
# passes a New-FolderTrust: the error id, the folder's name and the setting its refusals name.
#
# Users may create folders in %ProgramData% (its default DACL gives BUILTIN\Users create-folders and create-files,
# and CREATOR OWNER full control), so any level from UsercubeIac down may have been made by someone else first. Its
# owner may always rewrite its DACL (WRITE_DAC), and whoever may delete children of a folder (FILE_DELETE_CHILD) may
# rename the level below away and put their own in its place, between the check of a file and its use. So each
# level, UsercubeIac included, is created owned by Administrators with a protected SYSTEM/Administrators DACL, or
# checked when it exists: refused when it is a reparse point or owned by an account that is not trusted, its DACL
# put back when only the DACL is wrong (and then what others may have put inside it meanwhile deleted).

$AdminSids = @('S-1-5-18', 'S-1-5-32-544')  # LocalSystem, BUILTIN\Administrators

function Get-ScriptUserSid {
    # The account running this script (an administrator: the deploying account must be one).
    $identity = [System.Security.Principal.WindowsIdentity]::GetCurrent()
    try { return $identity.User.Value } finally { $identity.Dispose() }
}

# Owners trusted besides SYSTEM and Administrators: the account running this script. A folder an administrator
# made by hand (Explorer) or that earlier versions of this project made is owned by that administrator's own SID,
# not by the Administrators group, on hosts whose policy "System objects: Default owner for objects created by
# members of the Administrators group" says "Object creator" (its default since Windows Vista). That account can
# rewrite any DACL here anyway.
$TrustedOwnerSids = @($AdminSids + (Get-ScriptUserSid))

# Rights on a file that let its holder change what it holds or who may (FILE_WRITE_DATA, FILE_APPEND_DATA, DELETE,
# WRITE_DAC, WRITE_OWNER, GENERIC_ALL, GENERIC_WRITE).
$FileWriteRights = 0x500D0006

function New-AdminOnlySecurity {
    # Owned by Administrators (an owner may always rewrite the DACL: WRITE_DAC), protected (no entry
    # inherited from %ProgramData%), SYSTEM and Administrators only, inherited by everything below.
    $security = New-Object System.Security.AccessControl.DirectorySecurity
    $security.SetOwner((New-Object System.Security.Principal.SecurityIdentifier 'S-1-5-32-544'))
    $security.SetAccessRuleProtection($true, $false)
    foreach ($sid in $AdminSids) {
        $identity = New-Object System.Security.Principal.SecurityIdentifier $sid
        $inheritance = [System.Security.AccessControl.InheritanceFlags]'ContainerInherit, ObjectInherit'
        $rule = New-Object System.Security.AccessControl.FileSystemAccessRule($identity, [System.Security.AccessControl.FileSystemRights]::FullControl, $inheritance, [System.Security.AccessControl.PropagationFlags]::None, [System.Security.AccessControl.AccessControlType]::Allow)
        $security.AddAccessRule($rule)
    }
    return $security
}

function Get-AdminFolderLevels([string] $Folder) {
    # %ProgramData%\UsercubeIac and each folder below it down to $Folder, outermost first: each is checked.
    $top = [System.IO.Path]::Combine([Environment]::GetFolderPath('CommonApplicationData'), 'UsercubeIac')
    $levels = New-Object 'System.Collections.Generic.List[string]'
    for ($path = $Folder; $path.Length -gt $top.Length; $path = [System.IO.Path]::GetDirectoryName($path)) {
        $levels.Insert(0, $path)
    }
    $levels.Insert(0, $top)
    return , $levels.ToArray()
}

function Get-UntrustedReason([string] $Path) {
    # Why a folder is not safe to use, or $null: @{ refuse; text }, refuse $true when set must refuse it (a reparse
    # point could lead anywhere; an owner not trusted ($TrustedOwnerSids) could rewrite its DACL at will), $false
    # when set may put its DACL back (an entry, explicit or inherited, for anyone but SYSTEM and Administrators).
    # The decision travels as a flag, not in the English text (review-owners3 O3). A DACL that is not protected is
    # fine when all it inherits is theirs: a level below one already checked that just inherits from it (its
    # parent's owner is trusted, so nobody else can change that).
    $info = New-Object System.IO.DirectoryInfo $Path
    if (($info.Attributes -band [System.IO.FileAttributes]::ReparsePoint) -ne 0) { return @{ refuse = $true; text = 'is a junction or symbolic link' } }
    try {
        $acl = [System.IO.Directory]::GetAccessControl($Path)
    } catch [System.UnauthorizedAccessException] {
        # Its DACL withholds READ_CONTROL from this account, which a trusted owner has unless an OWNER RIGHTS
        # (S-1-3-4) entry says otherwise (MS-DTYP 2.5.3.2): its owner cannot be read, so it is refused.
        return @{ refuse = $true; text = 'does not let the Administrators read its owner and permissions, so its owner cannot be checked (an account not trusted may own it)' }
    }
    $owner = $acl.GetOwner([System.Security.Principal.SecurityIdentifier]).Value
    if ($TrustedOwnerSids -notcontains $owner) { return @{ refuse = $true; text = "is owned by $owner, not by Administrators" } }
    foreach ($rule in $acl.GetAccessRules($true, $true, [System.Security.Principal.SecurityIdentifier])) {
        if ($AdminSids -notcontains $rule.IdentityReference.Value) { return @{ refuse = $false; text = "grants $($rule.IdentityReference.Value) access" } }
    }
    return $null
}

function Get-PlantedEntries([string] $Folder) {
    # What lies in a level whose DACL let others in that may be theirs: a reparse point; an entry owned by an
    # account not trusted (whoever creates an entry owns it); a file others may write (its content may be theirs,
    # whoever owns it; before the level's DACL is put back, the entries' inherited entries still show that). A
    # folder that only let others create entries is kept, and each entry in it checked the same way. Kept, the
    # rest: the runtime archive's records (manifest, swap journal) an administrator wrote there, which an emptied
    # folder would lose (the swap journal is the only list of what undoes an interrupted swap).
    $found = New-Object 'System.Collections.Generic.List[string]'
    foreach ($entry in (New-Object System.IO.DirectoryInfo $Folder).GetFileSystemInfos()) {
        $isFolder = ($entry.Attributes -band [System.IO.FileAttributes]::Directory) -ne 0
        if (($entry.Attributes -band [System.IO.FileAttributes]::ReparsePoint) -ne 0) { $found.Add($entry.FullName); continue }
        try {
            if ($isFolder) { $acl = [System.IO.Directory]::GetAccessControl($entry.FullName) } else { $acl = [System.IO.File]::GetAccessControl($entry.FullName) }
        } catch [System.UnauthorizedAccessException] {
            # Its DACL withholds READ_CONTROL (GetAccessControl reads owner, group and DACL) from this account, so its
            # owner cannot be checked (an owner has READ_CONTROL unless an OWNER RIGHTS entry says otherwise: MS-DTYP
            # 2.5.3.2): planted. Deleting it needs no right on it: FILE_DELETE_CHILD on this level, the
            # Administrators' once its DACL is put back, grants DELETE on what it holds (learn.microsoft.com, "File
            # Security and Access Rights").
            $found.Add($entry.FullName); continue
        }
        if ($TrustedOwnerSids -notcontains $acl.GetOwner([System.Security.Principal.SecurityIdentifier]).Value) { $found.Add($entry.FullName); continue }
        if ($isFolder) { $found.AddRange([string[]](Get-PlantedEntries $entry.FullName)); continue }
        foreach ($rule in $acl.GetAccessRules($true, $true, [System.Security.Principal.SecurityIdentifier])) {
            # The deploying account too: CREATOR OWNER's entry becomes one for whoever created the file, and its own
            # records must not be taken for planted ones (review-upload3 U1).
            $others = $TrustedOwnerSids -notcontains $rule.IdentityReference.Value
            $allow = $rule.AccessControlType -eq [System.Security.AccessControl.AccessControlType]::Allow
            if ($others -and $allow -and (([long][int]$rule.FileSystemRights) -band $FileWriteRights) -ne 0) { $found.Add($entry.FullName); break }
        }
    }
    return , $found.ToArray()
}

function Remove-PlantedEntry([string] $Path, [hashtable] $Trust) {
    # Directory.Delete removes a junction as a link, never what it points to (review R8). Found twice, or inside
    # a folder deleted before: gone already (File.Delete would throw DirectoryNotFoundException there).
    try {
        if ([System.IO.Directory]::Exists($Path)) { [System.IO.Directory]::Delete($Path, $true) } elseif ([System.IO.File]::Exists($Path)) { [System.IO.File]::Delete($Path) }
    } catch {
        Stop-Untrusted $Path "was put in a $($Trust.Name) others could write to, and could not be deleted ($($_.Exception.Message))" $Trust
    }
}

function New-FolderTrust([string] $Id, [string] $Name, [string] $Property) {
    # What a refusal of the folders of one kind says: its error id, what the folder is (the message names it) and
    # the setting it names ('' when the fix is on the host only).
    return @{ Id = $Id; Name = $Name; Property = $Property }
}

function Stop-Untrusted([string] $Path, [string] $Reason, [hashtable] $Trust) {
    Stop-Operation -Id $Trust.Id -Property $Trust.Property -Message "the $($Trust.Name) $Path $Reason; someone other than an administrator may have made or changed it: check it, delete it, then run again"
}

function Initialize-TrustedFolder([string] $Folder, [hashtable] $Trust) {
    # Created with owner and DACL in the same call (no moment with %ProgramData%'s inherited DACL), then checked
    # like an existing one: another account may make the folder between Exists and CreateDirectory, which then
    # returns it as that account made it, without an error and without applying the security given (.NET
    # Framework's Directory.InternalCreateDirectory ignores ERROR_ALREADY_EXISTS from CreateDirectoryW,
    # dotnet/referencesource mscorlib/system/io/directory.cs). An existing folder owned by a trusted account gets
    # the DACL back, any other is refused ($Trust: the error id, folder name and setting errors name). When the DACL is put back, what
    # others may have put inside meanwhile is deleted (Get-PlantedEntries); all of it can be made again.
    foreach ($path in (Get-AdminFolderLevels $Folder)) {
        if (-not [System.IO.Directory]::Exists($path)) {
            [void][System.IO.Directory]::CreateDirectory($path, (New-AdminOnlySecurity))
        }
        $reason = Get-UntrustedReason $path
        if ($null -eq $reason) { continue }
        if ($reason.refuse) { Stop-Untrusted $path $reason.text $Trust }
        # Looked for before the repair (the DACLs inherited then show what others could write) and after it
        # (an entry made meanwhile is its maker's). Those found before are deleted first: once the level's DACL is
        # written, the next run trusts it and never looks for them again (review-locks2 K1).
        # Get-PlantedEntries writes its list as one object (return , ...): @() around the call would make it one
        # element, and Remove-PlantedEntry's [string] would get the whole list joined into one path (deleting
        # nothing once two entries were planted).
        $planted = Get-PlantedEntries $path
        try {
            [System.IO.Directory]::SetAccessControl($path, (New-AdminOnlySecurity))
        } catch [System.UnauthorizedAccessException] {
            # SetSecurityInfo writes the level, then pushes its inheritable entries into each existing child
            # (learn.microsoft.com, "Automatic Propagation of Inheritable ACEs"): ERROR_ACCESS_DENIED, which
            # NativeObjectSecurity.Persist throws as UnauthorizedAccessException (dotnet/referencesource), when a
            # child withholds READ_CONTROL or WRITE_DAC from the Administrators, as a planted one may. The level's
            # DACL is written by then (FILE_DELETE_CHILD is the Administrators'): delete those, then write it again.
            foreach ($entry in $planted) { Remove-PlantedEntry $entry $Trust }
            try {
                [System.IO.Directory]::SetAccessControl($path, (New-AdminOnlySecurity))
            } catch [System.UnauthorizedAccessException] {
                Stop-Untrusted $path "holds an entry that does not let the Administrators change its permissions, so its own could not be put back ($($_.Exception.Message))" $Trust
            }
        }
        foreach ($entry in $planted) { Remove-PlantedEntry $entry $Trust }
        foreach ($entry in (Get-PlantedEntries $path)) { Remove-PlantedEntry $entry $Trust }
    }
}

function Assert-TrustedFolder([string] $Folder, [hashtable] $Trust) {
    # For scripts that change nothing here: an existing folder that is not safe is refused.
    foreach ($path in (Get-AdminFolderLevels $Folder)) {
        if (-not [System.IO.Directory]::Exists($path)) { return }
        $reason = Get-UntrustedReason $path
        if ($null -ne $reason) { Stop-Untrusted $path $reason.text $Trust }
    }
}

function Get-TrustedFolderRepair([string] $Folder, [hashtable] $Trust) {
    # For get, which changes nothing: the first existing level whose DACL set would put back, as "<path> <reason>",
    # or $null; a level set would refuse is refused here too. Nothing below a level to repair is judged: set deletes
    # what others put there (Get-PlantedEntries), so it is no reason to refuse a refresh.
    foreach ($path in (Get-AdminFolderLevels $Folder)) {
        if (-not [System.IO.Directory]::Exists($path)) { return $null }
        $reason = Get-UntrustedReason $path
        if ($null -eq $reason) { continue }
        if ($reason.refuse) { Stop-Untrusted $path $reason.text $Trust }
        return "$path $($reason.text)"
    }
    return $null
}
