param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_iis.ps1' %}
{% include '_staging.ps1' %}
{% include '_install.ps1' %}

# The files the archive put in Runtime (the manifest's list: never keep_files, never files others wrote),
# the folders they leave empty, and the staging folder. The agent is stopped first and not started again: its
# program is gone (a service would fail to start; whatever removes the agent stops or deletes it too).
$runtime = [string]$Spec.runtime_path
$folder = Get-StagingFolder $runtime
Assert-StagingFolder $folder
$before = Get-ArchiveState $Spec
$present = @()
if ($before.ensure -eq 'present') {
    $present = @(@((Read-Manifest $folder).files) | Where-Object { [System.IO.File]::Exists([System.IO.Path]::Combine($runtime, [string]$_)) })
}
$stopped = @()
if ($present.Count -gt 0) { $stopped = Stop-Agent $Spec $folder }
foreach ($file in $present) {
    $path = [System.IO.Path]::Combine($runtime, [string]$file)
    [System.IO.File]::SetAttributes($path, [System.IO.FileAttributes]::Normal)
    [System.IO.File]::Delete($path)
}
Remove-EmptyParents $runtime ([string[]]$present)
foreach ($work in @($NewFolderName, $OldFolderName)) { Remove-Tree ([System.IO.Path]::Combine($runtime, $work)) }
Remove-Tree $folder  # with agent-stopped.json and swap.json: nothing is left to start or undo
$after = Get-ArchiveState $Spec
if ($before.ensure -eq 'absent' -and $present.Count -eq 0) {
    Complete-Operation -State $after
}
Complete-Operation -State $after -Changed $true -Changes @(New-Change -Property 'ensure' -Before $before.ensure -After 'absent'; New-Change -Property 'files' -Before $present.Count -After 0)
