param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_common.ps1' %}

# Only the file itself: its folder and any backup stay, as other resources or people may own them.
$path = [string]$Spec.path
$before = Get-SettingsFileState $path
if ($before.ensure -eq 'absent') {
    Complete-Operation -State $before
}
Remove-Item -LiteralPath $path -Force
Complete-Operation -State (Get-SettingsFileState $path) -Changed $true -Changes @(New-Change -Property 'ensure' -Before 'present' -After 'absent')
