param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_iis.ps1' %}
{% include '_common.ps1' %}

Import-IisAdministration
$name = [string]$Spec.name
$desired = @($Spec.bindings)

# HTTP.sys would refuse a certificate that is not in the store only at commit, with "A specified
# logon session does not exist" (0x80070520); say which binding and certificate instead.
for ($i = 0; $i -lt $desired.Count; $i++) {
    $binding = $desired[$i]
    if ($binding.protocol -eq 'https') {
        $certificate = "Cert:\LocalMachine\$($binding.certificate_store)\$($binding.certificate_hash)"
        if (-not (Test-Path -LiteralPath $certificate)) {
            Stop-Operation -Id 'CertificateNotFound' -Category 'ObjectNotFound' -Property "bindings.$i.certificate_thumbprint" -Message "no certificate $certificate on this host; import it first (Certificate resource) or correct the thumbprint"
        }
    }
}

$result = Invoke-IisChange {
    param($manager)
    $changes = @()
    # The configuration system accepts any pool name; WAS would then ignore the application (503).
    if ($null -eq $manager.ApplicationPools[[string]$Spec.app_pool]) {
        Stop-Operation -Id 'AppPoolNotFound' -Category 'ObjectNotFound' -Property 'app_pool' -Message "application pool '$($Spec.app_pool)' does not exist; create it first (IisAppPool) or correct app_pool"
    }
    # IIS accepts a binding another site uses, but only one of the two sites can then start.
    foreach ($other in $manager.Sites) {
        if ($other.Name -eq $name) { continue }
        foreach ($theirs in $other.Bindings) {
            for ($i = 0; $i -lt $desired.Count; $i++) {
                if (Test-EndpointConflict (Get-BindingEndpoint ([string]$desired[$i].protocol) ([string]$desired[$i].binding_information)) (Get-BindingEndpoint $theirs.Protocol $theirs.BindingInformation)) {
                    Stop-Operation -Id 'BindingInUse' -Property "bindings.$i" -Message "binding '$($desired[$i].binding_information)' is already used by site '$($other.Name)' ($($theirs.Protocol) $($theirs.BindingInformation)); choose another port or host name, or remove that site"
                }
                # HTTP.sys holds one certificate per ip:port (per host:port with SNI): every non-SNI
                # '*:443:<host>' binding of every site shares the 0.0.0.0:443 entry. Bindings.Add with
                # another hash rewrites that one entry, so the other site's certificate would change
                # silently and the two resources would flip it back and forth. IIS Manager warns in
                # this case ("At least one other site is using the same HTTPS binding and the binding
                # is configured with a different certificate").
                if ($desired[$i].protocol -eq 'https' -and $theirs.Protocol -eq 'https') {
                    $key = Get-SslEndpointKey ([string]$desired[$i].binding_information) ([int]$desired[$i].ssl_flags)
                    $theirHash = ConvertFrom-HashBytes $theirs.CertificateHash
                    if ((Get-SslBindingKey $theirs) -eq $key -and $null -ne $theirHash -and $theirHash -ne [string]$desired[$i].certificate_hash) {
                        Stop-Operation -Id 'CertificateConflict' -Property "bindings.$i" -Message "binding '$($desired[$i].binding_information)' shares the HTTP.sys certificate binding $key with site '$($other.Name)' ($($theirs.Protocol) $($theirs.BindingInformation)), which uses certificate $theirHash; HTTP.sys holds one certificate per endpoint, so this would replace that site's certificate. Use SNI (a host name with ssl_flags 1) or the same certificate as site '$($other.Name)'"
                    }
                }
            }
        }
    }

    $site = $manager.Sites[$name]
    if ($null -eq $site) {
        $site = $manager.Sites.Add($name, 'http', [string]$desired[0].binding_information, [string]$Spec.physical_path)
        $site.Bindings.Clear()  # the bindings are set below, with their certificates
        $changes += New-Change -Property 'ensure' -Before 'absent' -After 'present'
    }
    $root = $site.Applications['/']
    $directory = $root.VirtualDirectories['/']
    if ($directory.PhysicalPath -ne [string]$Spec.physical_path) {
        $changes += New-Change -Property 'physical_path' -Before $directory.PhysicalPath -After ([string]$Spec.physical_path)
        $directory.PhysicalPath = [string]$Spec.physical_path
    }
    if ($root.ApplicationPoolName -ne [string]$Spec.app_pool) {
        $changes += New-Change -Property 'app_pool' -Before $root.ApplicationPoolName -After ([string]$Spec.app_pool)
        $root.ApplicationPoolName = [string]$Spec.app_pool
    }
    $preload = [bool]$root.GetAttributeValue('preloadEnabled')
    if ($preload -ne [bool]$Spec.preload_enabled) {
        $root.SetAttributeValue('preloadEnabled', [bool]$Spec.preload_enabled)
        $changes += New-Change -Property 'preload_enabled' -Before $preload -After ([bool]$Spec.preload_enabled)
    }
    $autoStart = [string]$Spec.state -eq 'Started'
    if ([bool]$site.ServerAutoStart -ne $autoStart) {
        $site.ServerAutoStart = $autoStart
        $changes += New-Change -Property 'server_auto_start' -Before (-not $autoStart) -After $autoStart
    }

    # Bindings that differ in anything (certificate included) are replaced; removing a binding also
    # removes its HTTP.sys certificate binding unless another binding shares it (Remove-IisBinding).
    foreach ($binding in @($site.Bindings)) {
        $actual = Get-BindingState $binding
        if (-not ($desired | Where-Object { Test-SameBinding $actual $_ })) {
            Remove-IisBinding $manager $site $binding
            $changes += New-Change -Property 'bindings' -Before (Format-Binding $actual) -After $null
        }
    }
    foreach ($wanted in $desired) {
        $present = @($site.Bindings | Where-Object { $_.Protocol -eq $wanted.protocol -and $_.BindingInformation -eq $wanted.binding_information })
        if ($present.Count -gt 0) { continue }
        if ($wanted.protocol -eq 'https') {
            $flags = [Microsoft.Web.Administration.SslFlags][int]$wanted.ssl_flags
            [void]$site.Bindings.Add([string]$wanted.binding_information, (ConvertTo-HashBytes ([string]$wanted.certificate_hash)), [string]$wanted.certificate_store, $flags)
        } else {
            [void]$site.Bindings.Add([string]$wanted.binding_information, [string]$wanted.protocol)
        }
        $changes += New-Change -Property 'bindings' -Before $null -After (Format-Binding $wanted)
    }
    @{ Changes = $changes }
}
$changes = @($result.Changes)

# Started or stopped is WAS's runtime state, not configuration: change it after the commit.
$manager = New-Object Microsoft.Web.Administration.ServerManager
try {
    $site = $manager.Sites[$name]
    $current = Get-IisObjectState { $site.State }
    if ([string]$Spec.state -eq 'Started' -and $current -ne 'Started') {
        try {
            Start-IisSite $site
        } catch {
            Stop-Operation -Id 'SiteStartFailed' -Property 'bindings' -Message "site '$name' did not start: $($_.Exception.Message). Another process or site holds one of its bindings (netsh http show urlacl / servicestate)"
        }
        $now = Wait-IisObjectState { $site.State } @('Started', 'Stopped')
        $changes += New-Change -Property 'state' -Before $current -After $now
    } elseif ([string]$Spec.state -eq 'Stopped' -and $current -ne 'Stopped') {
        Stop-IisSite $site  # retried on 0x800710D8, as Start-IisSite is
        $now = Wait-IisObjectState { $site.State } @('Stopped')
        $changes += New-Change -Property 'state' -Before $current -After $now
    }
    $after = Get-SiteState $manager $name
} finally {
    $manager.Dispose()
}
Complete-Operation -State $after -Changed ($changes.Count -gt 0) -Changes $changes
