param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_common.ps1' %}

# Only the staged installer and its log go. The hosting bundle stays installed: IIS sites other than the agents'
# may run on it, and uninstalling a runtime is the server owner's decision.
$root = Get-StagingRoot
$removed = $false
if (Test-Path -LiteralPath $root -PathType Container) {
    # Directory.Delete removes a junction inside the tree as a link, never what it points to (review R8).
    [System.IO.Directory]::Delete($root, $true)
    $removed = $true
}
$changes = @()
if ($removed) { $changes += New-Change -Property 'staged' -Before $root -After $null }
Complete-Operation -State ([ordered]@{ ensure = 'absent' }) -Changed $removed -Changes $changes
