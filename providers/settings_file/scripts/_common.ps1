# Helpers shared by the SettingsFile scripts.

function Get-FileEncodingName([byte[]] $Bytes) {
    if ($Bytes.Length -ge 3 -and $Bytes[0] -eq 0xEF -and $Bytes[1] -eq 0xBB -and $Bytes[2] -eq 0xBF) { return 'utf-8-bom' }
    if ($Bytes.Length -ge 2 -and $Bytes[0] -eq 0xFF -and $Bytes[1] -eq 0xFE) { return 'utf-16' }
    return 'utf-8'
}

function ConvertTo-FileBytes([string] $Text, [string] $EncodingName) {
    switch ($EncodingName) {
        'utf-8' { return (New-Object System.Text.UTF8Encoding $false).GetBytes($Text) }
        'utf-8-bom' { return [byte[]](0xEF, 0xBB, 0xBF) + (New-Object System.Text.UTF8Encoding $false).GetBytes($Text) }
        'utf-16' { return [byte[]](0xFF, 0xFE) + [System.Text.Encoding]::Unicode.GetBytes($Text) }
        default { Stop-Operation -Id 'UnknownEncoding' -Property 'encoding' -Message "unknown encoding '$EncodingName'" }
    }
}

function ConvertFrom-FileBytes([byte[]] $Bytes, [string] $EncodingName) {
    switch ($EncodingName) {
        'utf-8-bom' { return (New-Object System.Text.UTF8Encoding $false).GetString($Bytes, 3, $Bytes.Length - 3) }
        'utf-16' { return [System.Text.Encoding]::Unicode.GetString($Bytes, 2, $Bytes.Length - 2) }
        default { return (New-Object System.Text.UTF8Encoding $false).GetString($Bytes) }
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
