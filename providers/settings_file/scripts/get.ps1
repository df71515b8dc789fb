param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_common.ps1' %}

$state = Get-SettingsFileState $Spec.path
$state.reader_sids = Get-DeclaredReaderSids $Spec
Complete-Operation -State $state
