param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_common.ps1' %}

$path = [string]$Spec.path
$before = Get-SettingsFileState $path
[byte[]] $desired = ConvertTo-FileBytes ([string]$Spec.content) ([string]$Spec.encoding)
$desiredHash = Get-Sha256Hex $desired

if ($before.ensure -eq 'present' -and $before.sha256 -eq $desiredHash) {
    Complete-Operation -State $before
}

$folder = [System.IO.Path]::GetDirectoryName($path)
$changes = @()
if (-not (Test-Path -LiteralPath $folder -PathType Container)) {
    [void][System.IO.Directory]::CreateDirectory($folder)
    $changes += New-Change -Property 'parent_folder' -Before $null -After $folder
}

# Write next to the target and swap it in, so a reader never sees a half-written file and a
# failure leaves the old version in place.
$temporary = [System.IO.Path]::Combine($folder, '.' + [System.IO.Path]::GetFileName($path) + '.' + [guid]::NewGuid().ToString('N') + '.tmp')
try {
    [System.IO.File]::WriteAllBytes($temporary, $desired)
    if ($before.ensure -eq 'present') {
        $backup = $null
        if ($Spec.keep_backup) { $backup = "$path.bak" }
        Invoke-FileReplace -Source $temporary -Target $path -Backup $backup
    } else {
        [System.IO.File]::Move($temporary, $path)
    }
} finally {
    # Only once the target exists: after a half-done ReplaceFile the temporary file can hold the only copy.
    if ((Test-Path -LiteralPath $temporary) -and (Test-Path -LiteralPath $path -PathType Leaf)) { Remove-Item -LiteralPath $temporary -Force }
}

$after = Get-SettingsFileState $path
$changes += New-Change -Property 'content' -Before $before.sha256 -After $after.sha256
Complete-Operation -State $after -Changed $true -Changes $changes
