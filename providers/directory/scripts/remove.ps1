param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_common.ps1' %}

# Only folders this resource created (recorded in the Pulumi state), deepest first, and only while
# empty: Work, Temp, Mails and Sources hold synchronization data and provisioning orders. With
# delete_contents they go with everything in them. Folders that existed before are never removed.
function Test-ReparsePoint([System.IO.FileSystemInfo] $Item) {
    return ($Item.Attributes -band [System.IO.FileAttributes]::ReparsePoint) -ne 0
}

function Test-BehindLink([string] $Folder, [string[]] $Created) {
    # Whether a created folder above $Folder is now a junction or directory symbolic link: $Folder is
    # then in the link's target (the moved data), not a folder this resource created; the link itself
    # is removed when its own turn comes.
    foreach ($parent in $Created) {
        if ($Folder.StartsWith("$parent\", [System.StringComparison]::OrdinalIgnoreCase)) {
            $info = New-Object System.IO.DirectoryInfo $parent
            if ($info.Exists -and (Test-ReparsePoint $info)) { return $true }
        }
    }
    return $false
}

function Remove-FolderTree([System.IO.DirectoryInfo] $Folder) {
    # Not Remove-Item -Recurse: Windows PowerShell 5.1 descends into a junction or directory symbolic
    # link inside the tree and deletes its target's contents (PowerShell/PowerShell#621). A reparse
    # point is removed as a link, never entered: Directory.Delete on it removes the link only
    # (learn.microsoft.com, Directory.Delete remarks: "This method does not recurse through the
    # reparse point"). That holds for $Folder itself: a created folder an administrator replaced with
    # a junction (data moved to another disk with mklink /J) goes as a link, and its target stays.
    # Read-only files are made writable first, as Remove-Item -Force does.
    if (Test-ReparsePoint $Folder) {
        [System.IO.Directory]::Delete($Folder.FullName, $false)
        return
    }
    foreach ($entry in $Folder.GetFileSystemInfos()) {
        if ($entry -is [System.IO.DirectoryInfo]) {
            Remove-FolderTree $entry
        } else {
            $entry.Attributes = [System.IO.FileAttributes]::Normal
            $entry.Delete()
        }
    }
    $Folder.Attributes = [System.IO.FileAttributes]::Normal
    $Folder.Delete($false)
}

$removed = @()
$kept = @()
foreach ($folder in @(@($Spec.created) | Sort-Object -Property Length -Descending)) {
    if (-not (Test-Path -LiteralPath $folder -PathType Container)) { continue }
    if (Test-BehindLink $folder @($Spec.created)) { continue }
    $isEmpty = @(Get-ChildItem -LiteralPath $folder -Force | Select-Object -First 1).Count -eq 0
    if ($Spec.delete_contents) {
        Remove-FolderTree (New-Object System.IO.DirectoryInfo $folder)
        $removed += $folder
    } elseif ($isEmpty) {
        Remove-Item -LiteralPath $folder -Force
        $removed += $folder
    } else {
        $kept += $folder
    }
}
$state = [ordered]@{ ensure = 'absent'; path = [string]$Spec.path; removed = @($removed); kept = @($kept) }
if (Test-Path -LiteralPath ([string]$Spec.path) -PathType Container) { $state.ensure = 'present' }
$changes = @($removed | ForEach-Object { New-Change -Property 'folder' -Before $_ -After $null })
Complete-Operation -State $state -Changed ($removed.Count -gt 0) -Changes $changes
