param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_common.ps1' %}

Complete-Operation -State (Get-CertificateState $Spec)
