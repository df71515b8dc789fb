param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_common.ps1' %}

$name = [string]$Spec.name
$before = Get-ServiceState $name
if ($before.ensure -eq 'absent') {
    Complete-Operation -State $before
}
# Only a service this resource created is stopped and deleted: one that carries its marker (set.ps1), or, for a state
# from before markers (its owner empty), one that carries none. Any other (installed again by hand or by another stack
# since) is left as it is; the provider warns that it stays.
$owner = [string]$Spec.owner
$marker = [string]$before.owner_marker
if (-not (($owner -ne '' -and $marker -ceq $owner) -or ($owner -eq '' -and $marker -eq ''))) {
    Complete-Operation -State $before
}
$changes = New-Object System.Collections.ArrayList
# Delete on a running service only marks it for deletion: it would linger until it stops and
# every handle to it closes. Stop it first so that it is really gone when this returns.
if ($before.state -ne 'Stopped') {
    # No change when another program had stopped and deleted it before our stop (Invoke-ServiceControl: $false).
    if (Invoke-ServiceControl -Name $name -Action 'Stop' -GoneIsStopped) {
        [void]$changes.Add((New-Change -Property 'state' -Before $before.state -After 'Stopped'))
    }
}
# A service already marked for deletion (an earlier delete whose reply was lost, or one made while services.msc held
# it open) goes by itself once it is stopped and its last handle closes. Delete would only return 16: "The specified
# service has already been marked for deletion" (1072; learn.microsoft.com DeleteService, return codes; seen on
# Windows: Flowseal/zapret-discord-youtube#8521), and a retried destroy would fail although the service is going.
if (-not $before.marked_for_delete) {
    $filter = "Name='" + $name.Replace('\', '\\').Replace("'", "\'") + "'"
    $service = Get-CimInstance -ClassName Win32_Service -Filter $filter
    # Another program deleted it since the first read (while it was stopped, or after its stop above): nothing is
    # left to delete. Invoke-Win32ServiceMethod without -Service would call Delete on the class itself, a CIM error.
    # Or it marked it for deletion since (while services.msc holds it open): read again, as Delete would return 16.
    if ($null -ne $service -and -not (Test-DeleteFlag (Get-ServiceKeyValues $name))) {
        Invoke-Win32ServiceMethod -Method 'Delete' -Service $service -Arguments @{}
        [void]$changes.Add((New-Change -Property 'ensure' -Before 'present' -After 'absent'))
    }
}
Complete-Operation -State (Get-ServiceState $name) -Changed ($changes.Count -gt 0) -Changes @($changes)
