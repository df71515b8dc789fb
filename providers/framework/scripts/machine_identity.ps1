param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}

# Which machine answers at this address: the diff asks the old and the new address when a host's address or
# port is spelt differently (an IP for a name, 'localhost', an explicit default port), and the same machine
# means the objects stay where they are. Three answers, all only read (it runs during preview); the provider
# takes two addresses for one machine only when all three agree (the UUID only where both boards report one).
#
# 1. MachineGuid (HKLM\SOFTWARE\Microsoft\Cryptography) is written once per Windows installation by setup and
# renewed by `sysprep /generalize`; a disk cloned without sysprep keeps its source's value. It exists only in
# the 64-bit registry view: a 32-bit powershell.exe (SysWOW64) would read SOFTWARE\WOW6432Node\Microsoft\
# Cryptography, where it is absent (registry redirection, learn.microsoft.com "Registry Keys Affected by WOW64"),
# so the key is opened in the 64-bit view explicitly (RegistryKey.OpenBaseKey with RegistryView.Registry64,
# .NET Framework 4.0+).
$hive = [Microsoft.Win32.RegistryKey]::OpenBaseKey([Microsoft.Win32.RegistryHive]::LocalMachine, [Microsoft.Win32.RegistryView]::Registry64)
try {
    $key = $hive.OpenSubKey('SOFTWARE\Microsoft\Cryptography', $false)
    $guid = $null
    if ($null -ne $key) {
        try { $guid = $key.GetValue('MachineGuid', $null) } finally { $key.Dispose() }
    }
} finally {
    $hive.Dispose()
}
if ($guid -isnot [string] -or [string]::IsNullOrWhiteSpace($guid)) {
    Stop-Operation -Id 'MachineGuidMissing' -Category 'ObjectNotFound' -Message ("HKLM\SOFTWARE\Microsoft\Cryptography has no " +
        "MachineGuid value, so this host cannot say which machine it is; a host whose address or port changed is then " +
        "taken as another machine. Windows setup writes this value: check the registry (reg query " +
        "HKLM\SOFTWARE\Microsoft\Cryptography /v MachineGuid) or run sysprep /generalize on a cloned image.")
}

# 2. The computer name: [Environment]::MachineName is the NetBIOS name GetComputerName returns, read from the
# registry at startup (learn.microsoft.com, Environment.MachineName and GetComputerNameW). A copy of a disk joined
# to a domain beside its source has to be renamed, so two clones that share a MachineGuid differ here.
$computerName = [Environment]::MachineName

# 3. The SMBIOS system UUID: Win32_ComputerSystemProduct.UUID is SMBIOS type 1's UUID (learn.microsoft.com,
# Win32_ComputerSystemProduct). It is the machine's, not its disk's: a hypervisor gives each VM its own (Hyper-V
# keeps a VM's BIOSGUID in its configuration, apart from its virtual disks, learn.microsoft.com archive, John
# Howard, "How to uniquely identify a virtual machine in Hyper-V"; VMware makes a new uuid.bios for a VM "copied",
# VMware KB 1541), so one disk cloned into two VMs differs here even when the name was kept. A board that has no
# UUID to give reports all zeros (the Win32_ComputerSystemProduct page: "If a UUID is not available, a UUID of all
# zeros is used") or all FF (DMTF DSP0134 7.2.1: all FFh "not currently present in the system, but it can be
# set"). Those are answered as they are: both addresses are asked by this same query, so one machine answers the
# same value through both, and any difference, a placeholder against a real UUID too, is two machines (two boards
# that both say all FF leave the GUID and the name to decide). WMI that does not answer (winmgmt stopped or hung:
# -OperationTimeoutSec, a CimException, terminating under EAP=Stop), or answers no instance, several, or no UUID
# string, is a failure of its own, never "not known": the identity would be weaker without anyone knowing. An
# empty or blank UUID string is "no UUID" too (Windows documents all zeros, not empty, for a board without one):
# answered as '', the provider would refuse it with advice about the connection that does not fit.
$products = @()
$wmiProblem = $null
try {
    $products = @(Get-CimInstance -ClassName Win32_ComputerSystemProduct -Property UUID -OperationTimeoutSec 15)
} catch {
    $wmiProblem = $_.Exception.Message
}
if ($null -ne $wmiProblem) {
    Stop-Operation -Id 'SmbiosUuidUnreadable' -Category 'ReadError' -Message ("Win32_ComputerSystemProduct could not be " +
        "read ($wmiProblem), so this host cannot say which machine it is. Check that the Windows Management " +
        "Instrumentation service (winmgmt) runs and answers: Get-CimInstance -ClassName Win32_ComputerSystemProduct.")
}
# -or short-circuits, left to right: $products[0] (an index out of range throws under StrictMode) is read only
# when there is exactly one instance, and IsNullOrWhiteSpace only once the UUID is a string.
if ($products.Count -ne 1 -or $products[0].UUID -isnot [string] -or [string]::IsNullOrWhiteSpace($products[0].UUID)) {
    $answered = "$($products.Count) instance(s)"
    if ($products.Count -eq 1) { $answered = 'one instance whose UUID was missing or empty' }
    Stop-Operation -Id 'SmbiosUuidUnreadable' -Category 'ReadError' -Message ("Win32_ComputerSystemProduct answered " +
        "$answered, where Windows has exactly one with a UUID, so this host cannot say which machine it is. Check " +
        "WMI (winmgmt) on it: Get-CimInstance -ClassName Win32_ComputerSystemProduct | Select-Object UUID.")
}
$uuid = $products[0].UUID.Trim().ToLowerInvariant()

Complete-Operation -State ([ordered]@{
    machine_guid = $guid.Trim().ToLowerInvariant()
    computer_name = $computerName
    smbios_uuid = $uuid
})
