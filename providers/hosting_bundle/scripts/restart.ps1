param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_common.ps1' %}

# Only when the stack allows it (hosts.<name>.hostingBundle.restart) and the installer asked for it (exit code 3010).
# Restart-Computer -Force returns once the shutdown has started; this answer still gets out before the WinRM service
# stops, and the provider then waits until the host answers again with a new boot time.
$before = Get-BootTime
Restart-Computer -Force
Complete-Operation -State ([ordered]@{ restarting = $true; boot_time = $before }) -Changed $true -Changes @(New-Change -Property 'boot_time' -Before $before -After 'restarting')
