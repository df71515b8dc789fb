param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_iis.ps1' %}
{% include '_common.ps1' %}

# Reads only: what the host has, what set would do, and what it holds of the installer.
Complete-Operation -State (Get-BundleState $Spec)
