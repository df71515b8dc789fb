param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}

# Which machine answers at this address: the diff asks the old and the new address when a host's address or
# port is spelt differently (an IP for a name, 'localhost', an explicit default port), and the same machine
# means the objects stay where they are. Read only: it runs during preview.
#
# MachineGuid (HKLM\SOFTWARE\Microsoft\Cryptography) is written once per Windows installation by setup and
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
Complete-Operation -State ([ordered]@{ machine_guid = $guid.Trim().ToLowerInvariant() })
