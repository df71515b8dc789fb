param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_common.ps1' %}

# Only folders this resource created (recorded in the Pulumi state), deepest first, and only while
# empty: Work, Temp, Mails and Sources hold synchronization data and provisioning orders. With
# delete_contents they go with everything in them. Folders that existed before are never removed.
$removed = @()
$kept = @()
foreach ($folder in @(@($Spec.created) | Sort-Object -Property Length -Descending)) {
    if (-not (Test-Path -LiteralPath $folder -PathType Container)) { continue }
    $isEmpty = @(Get-ChildItem -LiteralPath $folder -Force | Select-Object -First 1).Count -eq 0
    if ($Spec.delete_contents) {
        Remove-Item -LiteralPath $folder -Recurse -Force
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
