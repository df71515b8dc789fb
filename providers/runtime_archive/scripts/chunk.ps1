param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_staging.ps1' %}

# One chunk of the upload, into this Runtime folder's staging folder.
$folder = Get-StagingFolder ([string]$Spec.runtime_path)
{% include '_chunk.ps1' %}
