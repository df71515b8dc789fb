param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_common.ps1' %}

Assert-ServerManager
$catalog = Get-FeatureCatalog
$names = Resolve-FeatureName $catalog @($Spec.names)
Complete-Operation -State (Get-FeatureState $catalog $names)
