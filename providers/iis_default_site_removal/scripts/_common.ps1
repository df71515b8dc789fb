# Helpers shared by the IisDefaultSiteRemoval scripts.
#
# Owners (see _owners.ps1): every IisDefaultSiteRemoval that wants the site and pool gone records itself
# under Owners\IisDefaultSiteRemoval\Default Web Site, and found.json keeps what was removed, as it was
# (site with its id, bindings and their certificates, root application, auto-start and state; pool with
# its settings and state). The last owner to go puts exactly that back.

function Get-DefaultsState($Manager) {
    $sitePresent = $null -ne $Manager.Sites[[string]$Spec.site_name]
    $poolPresent = $null -ne $Manager.ApplicationPools[[string]$Spec.pool_name]
    $ensure = 'absent'
    if (-not $sitePresent -and -not $poolPresent) { $ensure = 'present' }  # present = the removal holds
    return [ordered]@{ ensure = $ensure; site_present = $sitePresent; pool_present = $poolPresent }
}

function Get-DefaultsOwnersFolder {
    return (Get-OwnersFolder 'IisDefaultSiteRemoval' ([string]$Spec.site_name))
}

# The pool settings kept, by configuration path (learn.microsoft.com, "Adding Application Pools <add>":
# attributes and the processModel and recycling/periodicRestart elements). Not its password: a secret stays
# only where IIS keeps it (encrypted in applicationHost.config), so a pool that ran as a specific user comes
# back without it (destroy says so).
$PoolSettingPaths = @('managedRuntimeVersion', 'managedPipelineMode', 'startMode', 'autoStart',
    'processModel/identityType', 'processModel/userName', 'processModel/idleTimeout', 'processModel/loadUserProfile',
    'recycling/periodicRestart/time')

function Get-ConfigurationAttribute($Element, [string] $Path) {
    $parts = $Path.Split('/')
    for ($i = 0; $i -lt $parts.Count - 1; $i++) { $Element = $Element.GetChildElement($parts[$i]) }
    return $Element.GetAttribute($parts[$parts.Count - 1])
}

# Only what is set on the element itself (ConfigurationAttribute.IsInheritedFromDefaultValue false, as
# MicrosoftDocs' Get-IISSite example shows for serverAutoStart): an attribute left to applicationPoolDefaults
# or the schema stays so when it comes back. A TimeSpan is kept as its invariant text ([TimeSpan]::ToString).
function Get-ExplicitSettings($Element, [string[]] $Paths) {
    $settings = [ordered]@{}
    foreach ($path in $Paths) {
        $attribute = Get-ConfigurationAttribute $Element $path
        if ($attribute.IsInheritedFromDefaultValue) { continue }
        $value = $attribute.Value
        if ($value -is [TimeSpan]) { $value = [ordered]@{ timespan = $value.ToString() } }
        $settings[$path] = $value
    }
    return $settings
}

function Set-ExplicitSettings($Element, $Settings) {
    foreach ($property in $Settings.PSObject.Properties) {
        $value = $property.Value
        if ($null -ne $value -and $null -ne $value.PSObject.Properties['timespan']) {
            $value = [TimeSpan]::Parse([string]$value.timespan, [System.Globalization.CultureInfo]::InvariantCulture)
        }
        (Get-ConfigurationAttribute $Element $property.Name).Value = $value
    }
}

# The certificate of each https binding of the site, by bindingInformation, read before Invoke-IisChange:
# whether Bindings.Remove($b, $false) deletes the HTTP.sys entry at once or at CommitChanges is not documented,
# and a retry after a commit conflict reads the site again (Get-SiteRecord's -Known fills in what is gone then).
function Get-SiteCertificates([string] $Name) {
    $certificates = @{}
    $manager = New-Object Microsoft.Web.Administration.ServerManager
    try {
        $site = $manager.Sites[$Name]
        if ($null -eq $site) { return $certificates }
        foreach ($binding in $site.Bindings) {
            if ($binding.Protocol -ne 'https') { continue }
            $hash = ConvertFrom-HashBytes $binding.CertificateHash
            if ($hash) { $certificates[[string]$binding.BindingInformation] = @{ hash = $hash; store = [string]$binding.CertificateStoreName } }
        }
    } finally {
        $manager.Dispose()
    }
    return $certificates
}

# The site settings kept, by configuration path (learn.microsoft.com, "Site <site>": the serverAutoStart attribute
# and the limits and logFile elements), and the root application's (enabledProtocols: a net.tcp binding of WCF
# activation is served only when the application lists it, "http,net.tcp"). Not traceFailedRequestsLogging or hsts
# (child elements IIS setup leaves unset on the Default Web Site): they come back at their defaults.
$SiteSettingPaths = @('serverAutoStart', 'limits/maxBandwidth', 'limits/maxConnections', 'limits/connectionTimeout',
    'limits/maxUrlSegments', 'logFile/directory', 'logFile/enabled', 'logFile/period', 'logFile/logFormat')
$RootApplicationSettingPaths = @('applicationPool', 'enabledProtocols')

# The site as it is, to put it back later. The certificate of an https binding is HTTP.sys's
# (Binding.CertificateHash / CertificateStoreName read it from there; applicationHost.config has neither);
# one that reads empty is taken from $Known (Get-SiteCertificates before the first attempt).
function Get-SiteRecord($Site, [hashtable] $Known = @{}) {
    $root = $Site.Applications['/']
    $bindings = @(foreach ($binding in $Site.Bindings) {
        $record = [ordered]@{
            protocol = [string]$binding.Protocol
            binding_information = [string]$binding.BindingInformation
            ssl_flags = [int]$binding.GetAttributeValue('sslFlags')
            certificate_hash = $null
            certificate_store = $null
        }
        if ($binding.Protocol -eq 'https') {
            $record.certificate_hash = ConvertFrom-HashBytes $binding.CertificateHash
            $record.certificate_store = [string]$binding.CertificateStoreName
            $earlier = $Known[[string]$binding.BindingInformation]
            if (-not $record.certificate_hash -and $null -ne $earlier) {
                $record.certificate_hash = $earlier.hash
                $record.certificate_store = $earlier.store
            }
        }
        $record
    })
    return [ordered]@{
        name = [string]$Site.Name
        id = [long]$Site.Id
        physical_path = [string]$root.VirtualDirectories['/'].PhysicalPath
        settings = (Get-ExplicitSettings $Site $SiteSettingPaths)
        root_settings = (Get-ExplicitSettings $root $RootApplicationSettingPaths)
        state = (Get-IisObjectState { $Site.State })
        bindings = @($bindings)
    }
}

function Get-PoolRecord($Pool) {
    return [ordered]@{
        name = [string]$Pool.Name
        settings = (Get-ExplicitSettings $Pool $PoolSettingPaths)
        state = (Get-IisObjectState { $Pool.State })
    }
}

function Restore-Pool($Manager, $Record) {
    $pool = $Manager.ApplicationPools.Add([string]$Record.name)
    Set-ExplicitSettings $pool $Record.settings
}

# What someone added to the site after installation: applications other than the root one, and virtual
# directories other than the root application's root (each as its URL path). Not saved: removing the site
# would lose them, so set refuses to (DefaultSiteHasContent) rather than restore a site without them.
function Get-AddedSiteContent($Site) {
    $added = @()
    foreach ($application in $Site.Applications) {
        if ($application.Path -ne '/') { $added += "application $($application.Path)" }
        foreach ($directory in $application.VirtualDirectories) {
            if ($directory.Path -ne '/') { $added += "virtual directory $(($application.Path.TrimEnd('/')) + $directory.Path)" }
        }
    }
    return ,$added
}

# IIS as its installation creates it, for a state from before owners were recorded on the host, whose
# removed_site / removed_pool say only that the site or pool was removed: the pool with every setting
# inherited from applicationPoolDefaults, the site with id 1 when free, http on *:80, wwwroot.
function Get-StockSiteRecord {
    $http = [ordered]@{ protocol = 'http'; binding_information = '*:80:'; ssl_flags = 0; certificate_hash = $null; certificate_store = $null }
    return (ConvertTo-SpecObject @{ name = [string]$Spec.site_name; id = 1; physical_path = '%SystemDrive%\inetpub\wwwroot'; settings = @{}; root_settings = @{}; state = 'Started'; bindings = @($http) })
}

function Get-StockPoolRecord {
    return (ConvertTo-SpecObject @{ name = [string]$Spec.pool_name; settings = @{}; state = 'Started' })
}

# Whether LocalMachine\<store> holds the certificate with its private key: an https binding restored without
# either would fail the commit (HTTP.sys refuses a certificate it cannot find or whose key it cannot open:
# 0x80070520, ERROR_NO_SUCH_LOGON_SESSION), as it does for one re-imported as a .cer.
function Test-StoreCertificate([string] $StoreName, [string] $Hash) {
    if (-not $StoreName) { $StoreName = 'My' }
    $store = New-Object System.Security.Cryptography.X509Certificates.X509Store($StoreName, [System.Security.Cryptography.X509Certificates.StoreLocation]::LocalMachine)
    try {
        $store.Open([System.Security.Cryptography.X509Certificates.OpenFlags]'ReadOnly, OpenExistingOnly')
        $found = $store.Certificates.Find([System.Security.Cryptography.X509Certificates.X509FindType]::FindByThumbprint, $Hash, $false)
        return ($found.Count -gt 0 -and $found[0].HasPrivateKey)
    } catch {
        return $false  # no such store (OpenExistingOnly): no certificate either
    } finally {
        $store.Close()
    }
}

# Puts the site back; returns what it could not (an https binding whose certificate is gone), one line each.
function Restore-Site($Manager, $Record) {
    # Its own id when free (a site created since may have taken it: then the next free one, as Sites.Add gives).
    # Sites.Add(name, physicalPath, port) makes a placeholder http binding on that port, cleared at once: the
    # recorded bindings, whatever their protocol (net.tcp '808:*' is no http binding), are added below.
    $site = $Manager.Sites.Add([string]$Record.name, [string]$Record.physical_path, 80)
    $site.Bindings.Clear()
    if (@($Manager.Sites | Where-Object { $_.Id -eq [long]$Record.id }).Count -eq 0) { $site.Id = [long]$Record.id }
    Set-ExplicitSettings $site $Record.settings
    Set-ExplicitSettings $site.Applications['/'] $Record.root_settings
    $skipped = @()
    foreach ($binding in @($Record.bindings)) {
        $flags = [int]$binding.ssl_flags
        if ($binding.protocol -eq 'https' -and $binding.certificate_hash) {
            if (-not (Test-StoreCertificate ([string]$binding.certificate_store) ([string]$binding.certificate_hash))) {
                # Deleted since (its Certificate resource destroyed first): the site comes back without this
                # binding rather than block destroy; the warning says which one to add again.
                $skipped += "binding https $($binding.binding_information) not restored: its certificate $($binding.certificate_hash) is no longer in LocalMachine\$($binding.certificate_store) with its private key"
                continue
            }
            # The SslFlags enum defines only None, Sni and CentralCertStore (learn.microsoft.com, "SslFlags
            # Enum"); Server 2022's DisableHTTP2, DisableOCSPStp, DisableQUIC, DisableTLS13 and DisableLegacyTLS
            # (dsccommunity/WebAdministrationDsc#627) are schema bits only, and PowerShell's cast of an integer
            # with an undefined bit throws (LanguagePrimitives, UndefinedIntegerToEnum). The defined bits go to
            # Bindings.Add, the full integer through the schema, which knows them all.
            $defined = $flags -band 3
            $added = $site.Bindings.Add([string]$binding.binding_information, (ConvertTo-HashBytes ([string]$binding.certificate_hash)), [string]$binding.certificate_store, [Microsoft.Web.Administration.SslFlags]$defined)
            if ($flags -ne $defined) { $added.SetAttributeValue('sslFlags', $flags) }
        } else {
            # Bindings.Add(information, protocol) writes no sslFlags (the schema default, None): the recorded
            # ones (SNI, Central Certificate Store: an https binding with no certificate of its own) are set.
            $added = $site.Bindings.Add([string]$binding.binding_information, [string]$binding.protocol)
            if ($flags -ne 0) { $added.SetAttributeValue('sslFlags', $flags) }
        }
    }
    return ,$skipped
}

# Started or Stopped is WAS's runtime state, not configuration: set after the commit, as recorded.
function Restore-RuntimeState($Manager, $Found) {
    if ($null -ne $Found.pool -and [string]$Found.pool.state -eq 'Stopped') {
        $pool = $Manager.ApplicationPools[[string]$Found.pool.name]
        # Just committed, WAS may not know the pool yet: Stop() throws 0x800710D8 as State does, the same retry.
        if ($null -ne $pool -and (Get-IisObjectState { $pool.State }) -ne 'Stopped') { Invoke-WhenWasKnows { [void]$pool.Stop() } }
    }
    if ($null -ne $Found.site) {
        $site = $Manager.Sites[[string]$Found.site.name]
        if ($null -eq $site) { return }
        $now = Get-IisObjectState { $site.State }
        if ([string]$Found.site.state -eq 'Stopped' -and $now -ne 'Stopped') { Stop-IisSite $site }
        if ([string]$Found.site.state -eq 'Started' -and $now -ne 'Started') {
            # Another site may hold one of its bindings by now: the site is back, stopped, and destroy says so.
            try { Start-IisSite $site } catch { return "site '$($site.Name)' is restored but did not start: $($_.Exception.Message)" }
        }
    }
    return $null
}
