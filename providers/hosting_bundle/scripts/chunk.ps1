param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_common.ps1' %}

# One chunk of the upload, into the hosting bundle's staging folder.
$folder = Get-StagingRoot
{% include '_chunk.ps1' %}
