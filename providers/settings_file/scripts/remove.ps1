param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_common.ps1' %}

# The file, its backup and any temporary file an interrupted set left: all three are this resource's
# (no SettingsFile may be named '*.bak', and a temporary name is the file's own name with random hex digits,
# '.<name>.<hex>.tmp'). Its folder stays, as other resources or people may own it.
$path = [string]$Spec.path
$before = Get-SettingsFileState $path
$temporaries = Get-TemporaryFiles $path
$changes = @()
if ($before.ensure -eq 'present') {
    Remove-Item -LiteralPath $path -Force
    $changes += New-Change -Property 'ensure' -Before 'present' -After 'absent'
}
if ($null -ne $before.backup_path) {
    Remove-Item -LiteralPath $before.backup_path -Force
    $changes += New-Change -Property 'backup_path' -Before $before.backup_path -After $null
}
foreach ($temporary in $temporaries) {
    Remove-Item -LiteralPath $temporary -Force
    $changes += New-Change -Property 'temporary_file' -Before $temporary -After $null
}
Complete-Operation -State (Get-SettingsFileState $path) -Changed ($changes.Count -gt 0) -Changes $changes
