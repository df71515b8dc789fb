# Helpers shared by the SettingsFile scripts.

function Get-FileEncodingName([byte[]] $Bytes) {
    if ($Bytes.Length -ge 3 -and $Bytes[0] -eq 0xEF -and $Bytes[1] -eq 0xBB -and $Bytes[2] -eq 0xBF) { return 'utf-8-bom' }
    if ($Bytes.Length -ge 2 -and $Bytes[0] -eq 0xFF -and $Bytes[1] -eq 0xFE) { return 'utf-16' }
    return 'utf-8'
}

# The leading comma returns the byte[] as one object: PowerShell unrolls a returned array, so
# without it empty content would reach the caller as $null and any content as an object[]
# (about_Return: "the array is unrolled"). '+' of two byte[] gives object[], hence the casts.
function ConvertTo-FileBytes([string] $Text, [string] $EncodingName) {
    $body = (New-Object System.Text.UTF8Encoding $false).GetBytes($Text)
    switch ($EncodingName) {
        'utf-8' { [byte[]] $bytes = $body }
        'utf-8-bom' { [byte[]] $bytes = [byte[]](0xEF, 0xBB, 0xBF) + $body }
        'utf-16' { [byte[]] $bytes = [byte[]](0xFF, 0xFE) + [System.Text.Encoding]::Unicode.GetBytes($Text) }
        default { Stop-Operation -Id 'UnknownEncoding' -Property 'encoding' -Message "unknown encoding '$EncodingName'" }
    }
    return , $bytes
}

function ConvertFrom-FileBytes([byte[]] $Bytes, [string] $EncodingName) {
    switch ($EncodingName) {
        'utf-8-bom' { return (New-Object System.Text.UTF8Encoding $false).GetString($Bytes, 3, $Bytes.Length - 3) }
        'utf-16' { return [System.Text.Encoding]::Unicode.GetString($Bytes, 2, $Bytes.Length - 2) }
        default { return (New-Object System.Text.UTF8Encoding $false).GetString($Bytes) }
    }
}

# File.Replace is ReplaceFileW, which can fail half-way (learn.microsoft.com, ReplaceFileW, "Return
# value"): 1175 ERROR_UNABLE_TO_REMOVE_REPLACED leaves both files under their names; 1176
# ERROR_UNABLE_TO_MOVE_REPLACEMENT without a backup name leaves the replaced file gone and the new
# content under the temporary name; 1177 ERROR_UNABLE_TO_MOVE_REPLACEMENT_2 leaves the replaced file
# under another name. When the target is gone the new content is moved into place, so the file is
# never lost. Access denied and sharing violations from antivirus, indexers or file watchers are
# transient and retried (as LLVM's sys::fs rename does for ReplaceFileW).
function Invoke-FileReplace([string] $Source, [string] $Target, $Backup) {
    $attempt = 0
    while ($true) {
        $attempt++
        try {
            [System.IO.File]::Replace($Source, $Target, $Backup)
            return
        } catch {
            if ((Test-Path -LiteralPath $Source -PathType Leaf) -and -not (Test-Path -LiteralPath $Target)) {
                [System.IO.File]::Move($Source, $Target)
                return
            }
            $reason = $_.Exception
            while ($null -ne $reason.InnerException) { $reason = $reason.InnerException }
            $code = $reason.HResult -band 0xFFFF
            if ($attempt -ge 5 -or @(5, 32, 33, 1175) -notcontains $code) { throw }
            Start-Sleep -Milliseconds (100 * $attempt)
        }
    }
}

function Get-Sha256Hex([byte[]] $Bytes) {
    $sha = [System.Security.Cryptography.SHA256]::Create()
    try { return (-join ($sha.ComputeHash($Bytes) | ForEach-Object { $_.ToString('x2') })) } finally { $sha.Dispose() }
}

function Get-SettingsFileState([string] $Path) {
    $backup = "$Path.bak"
    $backupPath = $null
    if (Test-Path -LiteralPath $backup -PathType Leaf) { $backupPath = $backup }
    if (-not (Test-Path -LiteralPath $Path -PathType Leaf)) {
        if (Test-Path -LiteralPath $Path) {
            Stop-Operation -Id 'PathIsNotAFile' -Property 'path' -Message "'$Path' exists and is not a file"
        }
        return [ordered]@{ ensure = 'absent'; path = $Path; backup_path = $backupPath }
    }
    $bytes = [System.IO.File]::ReadAllBytes($Path)
    $encodingName = Get-FileEncodingName $bytes
    return [ordered]@{
        ensure = 'present'
        path = $Path
        content = (ConvertFrom-FileBytes $bytes $encodingName)
        encoding = $encodingName
        sha256 = (Get-Sha256Hex $bytes)
        size = $bytes.Length
        backup_path = $backupPath
    }
}
