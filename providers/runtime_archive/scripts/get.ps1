param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_staging.ps1' %}

Complete-Operation -State (Get-ArchiveState $Spec)
