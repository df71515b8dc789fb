# Helpers of the scripts that receive a file in chunks (HostingBundle, RuntimeArchive; the Python side is
# providers/framework/upload.py): the staging folders only SYSTEM and Administrators can use, the file while it
# travels, SHA-256. Included by each resource's own staging include, which says where its folder is.
#
# The folders' protection: _admin_folders.ps1.

{% include '_admin_folders.ps1' %}

function Get-HexText([byte[]] $Bytes) {
    return (-join ($Bytes | ForEach-Object { $_.ToString('x2') }))
}

function Get-StreamSha256([System.IO.Stream] $Stream) {
    # Not Get-FileHash: a module function (autoloaded, its errors non-terminating).
    $sha = [System.Security.Cryptography.SHA256]::Create()
    try { return (Get-HexText $sha.ComputeHash($Stream)) } finally { $sha.Dispose() }
}

function Get-FileSha256([string] $Path) {
    $stream = [System.IO.FileStream]::new($Path, [System.IO.FileMode]::Open, [System.IO.FileAccess]::Read, [System.IO.FileShare]::Read)
    try { return (Get-StreamSha256 $stream) } finally { $stream.Dispose() }
}

function Get-PartialPath([string] $Folder, [string] $Sha256) {
    return [System.IO.Path]::Combine($Folder, "upload-$Sha256.partial")
}

# The staging folders' refusals: StagingFolderUntrusted, naming $Property ('' when the fix is on the host only).
function Get-StagingTrust([string] $Property) {
    return (New-FolderTrust 'StagingFolderUntrusted' 'staging folder' $Property)
}

function Initialize-AdminOnlyFolder([string] $Folder, [string] $Property) {
    Initialize-TrustedFolder $Folder (Get-StagingTrust $Property)
}

function Assert-AdminOnlyFolder([string] $Folder, [string] $Property) {
    Assert-TrustedFolder $Folder (Get-StagingTrust $Property)
}

function Get-StagingRepair([string] $Folder, [string] $Property) {
    return (Get-TrustedFolderRepair $Folder (Get-StagingTrust $Property))
}
