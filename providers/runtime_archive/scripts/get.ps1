param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_staging.ps1' %}

Assert-StagingFolder (Get-StagingFolder ([string]$Spec.runtime_path))
Complete-Operation -State (Get-ArchiveState $Spec)
