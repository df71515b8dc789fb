param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_common.ps1' %}

$name = [string]$Spec.name
$before = Get-ServiceState $name
if ($before.ensure -eq 'absent') {
    Complete-Operation -State $before
}
$changes = New-Object System.Collections.ArrayList
# Delete on a running service only marks it for deletion: it would linger until it stops and
# every handle to it closes. Stop it first so that it is really gone when this returns.
if ($before.state -ne 'Stopped') {
    Invoke-ServiceControl -Name $name -Action 'Stop' -GoneIsStopped
    [void]$changes.Add((New-Change -Property 'state' -Before $before.state -After 'Stopped'))
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
    if ($null -ne $service) {
        Invoke-Win32ServiceMethod -Method 'Delete' -Service $service -Arguments @{}
        [void]$changes.Add((New-Change -Property 'ensure' -Before 'present' -After 'absent'))
    }
}
Complete-Operation -State (Get-ServiceState $name) -Changed ($changes.Count -gt 0) -Changes @($changes)
