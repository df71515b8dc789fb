param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_common.ps1' %}

$path = [string]$Spec.path
$before = Get-DirectoryState $Spec
$created = @()
$created += New-FolderTree $path
foreach ($name in @($Spec.subfolders)) {
    $created += New-FolderTree ([System.IO.Path]::Combine($path, [string]$name))
}
$after = Get-DirectoryState $Spec
$after.created = @($created)
if ($created.Count -eq 0) {
    Complete-Operation -State $after
}
$changes = @()
if ($before.ensure -eq 'absent') {
    $changes += New-Change -Property 'ensure' -Before 'absent' -After 'present'
}
$changes += New-Change -Property 'subfolders' -Before @($before.subfolders) -After @($after.subfolders)
Complete-Operation -State $after -Changed $true -Changes $changes
