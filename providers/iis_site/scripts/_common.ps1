# Helpers shared by the IisSite scripts.

function Test-EndpointConflict($A, $B) {
    # HTTP.sys serves one binding per address, port and host name, whatever the protocol. A specific
    # address wins over '*' (IIS registers '*' as a weak wildcard), so '*:80:' on one site and
    # '10.0.0.5:80:' on another both start; only the same address clashes. Non-HTTP bindings
    # (net.tcp, net.pipe, msmq) have no endpoint ($null) and never clash.
    if ($null -eq $A -or $null -eq $B) { return $false }
    return $A.Ip -eq $B.Ip -and $A.Port -eq $B.Port -and $A.HostName -eq $B.HostName
}

function Get-BindingState($Binding) {
    # The certificate hash and store come from HTTP.sys through ServerManager; applicationHost.config has neither.
    $https = $Binding.Protocol -eq 'https'
    $state = [ordered]@{
        protocol = $Binding.Protocol
        binding_information = $Binding.BindingInformation
        ssl_flags = [int]$Binding.GetAttributeValue('sslFlags')
        certificate_hash = $null
        certificate_store = $null
    }
    if ($https) {
        $state.certificate_hash = ConvertFrom-HashBytes $Binding.CertificateHash
        $state.certificate_store = $Binding.CertificateStoreName
    }
    return $state
}

function Format-Binding($Binding) {
    $text = "$($Binding.protocol) $($Binding.binding_information)"
    if ($Binding.protocol -eq 'https') { $text += " certificate $($Binding.certificate_store)\$($Binding.certificate_hash) sslFlags $($Binding.ssl_flags)" }
    return $text
}

function Test-SameBinding($Actual, $Desired) {
    if ($Actual.protocol -ne $Desired.protocol -or $Actual.binding_information -ne $Desired.binding_information) { return $false }
    if ($Actual.protocol -ne 'https') { return $true }
    return $Actual.ssl_flags -eq [int]$Desired.ssl_flags -and $Actual.certificate_hash -eq $Desired.certificate_hash -and $Actual.certificate_store -eq $Desired.certificate_store
}

function Get-SiteState($Manager, [string] $Name) {
    $site = $Manager.Sites[$Name]
    if ($null -eq $site) {
        return [ordered]@{ ensure = 'absent'; name = $Name }
    }
    $root = $site.Applications['/']
    return [ordered]@{
        ensure = 'present'
        name = $site.Name
        site_id = [int]$site.Id
        physical_path = $root.VirtualDirectories['/'].PhysicalPath
        app_pool = $root.ApplicationPoolName
        bindings = @(foreach ($binding in $site.Bindings) { Get-BindingState $binding })
        preload_enabled = [bool]$root.GetAttributeValue('preloadEnabled')
        state = (Get-IisObjectState { $site.State })
    }
}
