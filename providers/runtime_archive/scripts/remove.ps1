param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_iis.ps1' %}
{% include '_staging.ps1' %}
{% include '_install.ps1' %}

# The files the archive put in Runtime (the manifest's list: never keep_files, never files others wrote),
# the folders they leave empty, and the staging folder. The agent is stopped first and not started again: its
# program is gone (a service would fail to start; whatever removes the agent stops or deletes it too). A file
# a running program still maps (an exiting worker, or an agent this resource was not told about) cannot be
# deleted: the removal then stops with RuntimeFilesInUse, keeping the manifest, and the next one goes on.
# Every wait of the run (the agent's stop) takes its time from one budget (Get-WaitBudget), from here.
$RunClock = [System.Diagnostics.Stopwatch]::StartNew()
$RunBudgetSeconds = [int]$Spec.wait_budget_s
$runtime = [string]$Spec.runtime_path
$folder = Get-StagingFolder $runtime
Assert-StagingFolder $folder
# An unfinished swap is undone first: swap.json is the only list of the new version's files it moved into
# Runtime (the manifest still lists the previous version's), and .iac-old holds the only copies of the others.
# What it stopped counts as stopped by the removal (the wait for a pool's worker, the messages).
$restoreStopped = @()
if ([System.IO.File]::Exists((Get-SwapJournalPath $folder))) {
    try { $restoreStopped = Restore-InterruptedSwap $Spec $runtime $folder $false } catch { if (Test-OperationEnd $_.Exception) { throw }; Stop-Reported $_.Exception }
}
$before = Get-ArchiveState $Spec
$present = @()
if ($before.ensure -eq 'present') {
    $present = @(@((Read-Manifest $folder).files) | Where-Object { [System.IO.File]::Exists([System.IO.Path]::Combine($runtime, [string]$_)) })
}
$stopped = @()
$dependents = @()
if ($present.Count -gt 0) {
    $stopError = $null
    try { $stopped = Stop-Agent $Spec $folder $false } catch { if (Test-OperationEnd $_.Exception) { throw }; $stopError = $_.Exception }
    $stopped = @(@($restoreStopped) + @($stopped))
    # The services that depend on the agent's were stopped with it (ServiceController.Stop) and stay stopped:
    # starting one would start the agent's first (StartService), whose program is gone. Named in the result.
    $record = Read-AgentStopped $folder
    if ($null -ne $record) { $dependents = @($record.dependents | Where-Object { $_ }) }
    # Not started again: the record goes at once, so that no later set takes this stop for a broken run's.
    [System.IO.File]::Delete((Get-AgentStoppedPath $folder))
    if ($null -ne $stopError) { Stop-Reported $stopError }
    # Deleted, not renamed: the stopped pool's exiting worker must have let go of the images first.
    # (A worker still running after the wait: the deletion below reports what it holds, RuntimeFilesInUse.)
    if ($stopped -contains 'pool') { [void](Wait-PoolWorkerExit ([string]$Spec.app_pool)) }
}
$held = Remove-Files @($present | ForEach-Object { [System.IO.Path]::Combine($runtime, [string]$_) })
if ($held.Count -gt 0) {
    # The manifest stays: the next removal deletes what is left.
    $hint = 'Stop the program that runs from it (the agent: give its app_pool or service_name to have it stopped), then run the removal again.'
    if ($stopped.Count -gt 0) { $hint = "The agent ($(Get-AgentLabel $Spec)) was stopped, and its process may still be exiting (a pool's worker waits up to its shutdownTimeLimit, 90 s by default): run the removal again in a minute." }
    if ($dependents.Count -gt 0) { $hint += " The services that depend on it were stopped too: $($dependents -join ', ')." }
    Stop-Operation -Id 'RuntimeFilesInUse' -Property 'runtime_path' -Message "$($held.Count) of the archive's files in $runtime could not be deleted, as a program still holds them (a running program maps its images): $($held[0].path) ($($held[0].reason))$(if ($held.Count -gt 1) { ' and others' }). $hint The other files were deleted."
}
Remove-EmptyParents $runtime ([string[]]$present)
foreach ($work in @($NewFolderName, $OldFolderName)) {
    $path = [System.IO.Path]::Combine($runtime, $work)
    if (-not (Remove-TreeBestEffort $path)) {
        Stop-Operation -Id 'RuntimeFilesInUse' -Property 'runtime_path' -Message "$path, left by an upgrade, still holds files a program maps (the previous version's, while its worker exits); the archive's files were deleted: run the removal again in a minute"
    }
}
Remove-Tree $folder  # with agent-stopped.json and swap.json: nothing is left to start or undo
$after = Get-ArchiveState $Spec
if ($before.ensure -eq 'absent' -and $present.Count -eq 0) {
    Complete-Operation -State $after
}
$changes = @(New-Change -Property 'ensure' -Before $before.ensure -After 'absent'; New-Change -Property 'files' -Before $present.Count -After 0)
foreach ($dependent in $dependents) { $changes += New-Change -Property 'dependent_service' -Before "$($dependent): running" -After "stopped with service '$($Spec.service_name)', which stays stopped (its program is gone)" }
Complete-Operation -State $after -Changed $true -Changes $changes
