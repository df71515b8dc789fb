# What explains an agent that does not answer: read from the host's own configuration, each with its fix. Only run
# when the request failed; every cause found is named, the most basic first.

$WellKnownGroups = @('S-1-1-0', 'S-1-5-11', 'S-1-5-32-545')  # Everyone, Authenticated Users, BUILTIN\Users
$IisIusrs = 'S-1-5-32-568'  # a pool's worker process has IIS_IUSRS in its token (learn.microsoft.com, "Application Pool Identities")
$FileReadData = 0x1

function Get-AccountSid([string] $Account) {
    try {
        return (New-Object System.Security.Principal.NTAccount($Account)).Translate([System.Security.Principal.SecurityIdentifier]).Value
    } catch {
        return $null
    }
}

function Get-TokenSids([string] $Account) {
    # The groups every logon of the account carries; memberships of other groups are not resolved here.
    $sid = Get-AccountSid $Account
    if ($null -eq $sid) { return @() }
    $sids = @($sid) + $WellKnownGroups
    if ($Account.ToUpperInvariant().StartsWith('IIS APPPOOL\')) { $sids += $IisIusrs }
    return $sids
}

function Test-FileReadable([string] $Path, [string[]] $Sids) {
    # The DACL's entries in order, as AccessCheck walks them (inherited ones included): a deny of FILE_READ_DATA
    # for one of the token's SIDs before any allow of it denies, an allow grants.
    $rules = (New-Object System.IO.FileInfo $Path).GetAccessControl([System.Security.AccessControl.AccessControlSections]::Access).GetAccessRules($true, $true, [System.Security.Principal.SecurityIdentifier])
    foreach ($rule in $rules) {
        if ($Sids -notcontains $rule.IdentityReference.Value) { continue }
        # GENERIC_READ and GENERIC_ALL include FILE_READ_DATA (the generic mapping for files). Int64: 0x80000000
        # is negative as an Int32 literal in Windows PowerShell.
        $mask = ([long][int]$rule.FileSystemRights) -band [long]4294967295
        if (($mask -band ($FileReadData -bor [long]2147483648 -bor [long]268435456)) -eq 0) { continue }
        return ([string]$rule.AccessControlType -eq 'Allow')
    }
    return $false
}

# Each Get-*Causes function writes its causes (strings) to the pipeline; callers collect them with @().

function Get-KeyCauses($Spec) {
    # The agent opens its certificates' private keys at start, as its account: the manual has that account read them.
    $causes = @()
    if (@($Spec.key_thumbprints).Count -eq 0) { return }
    $sids = @(Get-TokenSids ([string]$Spec.identity))
    if ($sids.Count -eq 0) { return @("the account $($Spec.identity) does not resolve to a SID on this host") }
    $store = New-Object System.Security.Cryptography.X509Certificates.X509Store('My', [System.Security.Cryptography.X509Certificates.StoreLocation]::LocalMachine)
    $store.Open([System.Security.Cryptography.X509Certificates.OpenFlags]::ReadOnly)
    try {
        foreach ($thumbprint in @($Spec.key_thumbprints)) {
            $found = $store.Certificates.Find([System.Security.Cryptography.X509Certificates.X509FindType]::FindByThumbprint, [string]$thumbprint, $false)
            if ($found.Count -eq 0) { $causes += "certificate $thumbprint is not in LocalMachine\My (the agent's settings name it)"; continue }
            $file = Find-KeyFile $found[0]
            if ($null -eq $file) { $causes += "certificate $thumbprint has no machine key file (its private key is missing)"; continue }
            if (-not (Test-FileReadable $file $sids)) {
                $causes += "the private key of certificate $thumbprint is not readable by $($Spec.identity): grant it read access (Certificate private_key_readers; ``up --refresh`` restores it)"
            }
        }
    } finally {
        $store.Close()
    }
    return $causes
}

function Find-KeyFile($Certificate) {
    # CNG (Crypto\Keys) or a legacy CSP (Crypto\RSA\MachineKeys): .NET Framework 4.6+ opens both through CNG, and the
    # unique name is the file's name in either folder (the Certificate resource searches them the same way).
    if (-not $Certificate.HasPrivateKey) { return $null }
    try {
        $key = [System.Security.Cryptography.X509Certificates.RSACertificateExtensions]::GetRSAPrivateKey($Certificate)
    } catch {
        return $null  # "Keyset does not exist": the store entry names a key whose file is gone
    }
    $name = $null
    if ($key -is [System.Security.Cryptography.RSACng]) { $name = $key.Key.UniqueName }
    elseif ($key -is [System.Security.Cryptography.RSACryptoServiceProvider]) { $name = $key.CspKeyContainerInfo.UniqueKeyContainerName }
    if ($null -eq $name) { return $null }
    foreach ($folder in @('Microsoft\Crypto\Keys', 'Microsoft\Crypto\RSA\MachineKeys')) {
        $file = Join-Path $env:ProgramData ($folder + '\' + $name)
        if (Test-Path -LiteralPath $file -PathType Leaf) { return $file }
    }
    return $null
}

function Get-RuntimeCauses($Spec) {
    # The hosting bundle (ASP.NET Core runtime of the agent's major.minor, and AspNetCoreModuleV2) and the agent's
    # own files in Runtime.
    $causes = @()
    $family = [string]$Spec.runtime_family
    $key = "HKLM:\SOFTWARE\Microsoft\ASP.NET Core\Shared Framework\v$family"
    if (-not (Test-Path -LiteralPath $key) -or @(Get-ChildItem -LiteralPath $key).Count -eq 0) {
        $causes += "no ASP.NET Core runtime $family is installed: the .NET Hosting Bundle is missing (an IIS site answers HTTP 500.31); install it (hosts.<name>.hostingBundle)"
    }
    $file = [System.IO.Path]::Combine([string]$Spec.runtime_path, [string]$Spec.app_file)
    if (-not [System.IO.File]::Exists($file)) {
        $causes += "the agent's runtime is missing: $file does not exist; extract the vendor's runtime archive into $($Spec.runtime_path) (agents[i].runtimeArchive)"
    }
    return $causes
}

function Get-IisCauses($Spec) {
    $causes = @()
    Import-IisAdministration
    $manager = New-Object Microsoft.Web.Administration.ServerManager
    try {
        $site = $manager.Sites[[string]$Spec.site_name]
        if ($null -eq $site) { return @("the IIS site '$($Spec.site_name)' does not exist") }
        $siteState = Get-IisObjectState { $site.State }
        # Starting, or Unknown (WAS has not picked the site up yet) may still settle: no cause, asked again.
        if ($siteState -eq 'Stopped' -or $siteState -eq 'Stopping') {
            $causes += "the IIS site '$($Spec.site_name)' is $($siteState.ToLowerInvariant()): start it (``up --refresh`` restores state Started)"
        }
        $pool = $manager.ApplicationPools[[string]$Spec.pool_name]
        if ($null -eq $pool) {
            $causes += "the application pool '$($Spec.pool_name)' does not exist"
        } else {
            $poolState = Get-IisObjectState { $pool.State }
            if ($poolState -eq 'Stopped' -or $poolState -eq 'Stopping') {
                $hint = ''
                if ([string]$pool.ProcessModel.IdentityType -eq 'SpecificUser') { $hint = ' (WAS stops a pool whose identity cannot log on: check its password)' }
                $causes += "the application pool '$($Spec.pool_name)' is $($poolState.ToLowerInvariant())$($hint): start it (``up --refresh`` restores state Started)"
            }
        }
        $binding = $null
        foreach ($candidate in $site.Bindings) {
            if ($candidate.Protocol -ne 'https') { continue }
            $endpoint = Get-BindingEndpoint $candidate.Protocol $candidate.BindingInformation
            if ($endpoint.Port -eq [int]$Spec.port -and $endpoint.HostName -eq ([string]$Spec.host_name).ToLowerInvariant()) { $binding = $candidate }
        }
        if ($null -eq $binding) {
            $causes += "the site has no https binding for $($Spec.host_name):$($Spec.port)"
        } else {
            $hash = $binding.CertificateHash
            if ($null -eq $hash -or $hash.Length -eq 0) {
                $causes += "no certificate is bound to https $($Spec.host_name):$($Spec.port) in HTTP.sys (netsh http show sslcert)"
            } else {
                $bound = -join ($hash | ForEach-Object { $_.ToString('X2') })
                $storeName = [string]$binding.CertificateStoreName
                if ($storeName -eq '') { $storeName = 'My' }
                $store = New-Object System.Security.Cryptography.X509Certificates.X509Store($storeName, [System.Security.Cryptography.X509Certificates.StoreLocation]::LocalMachine)
                $store.Open([System.Security.Cryptography.X509Certificates.OpenFlags]::ReadOnly)
                try { $inStore = $store.Certificates.Find([System.Security.Cryptography.X509Certificates.X509FindType]::FindByThumbprint, $bound, $false).Count -gt 0 } finally { $store.Close() }
                if (-not $inStore) {
                    $causes += "the certificate bound to https $($Spec.host_name):$($Spec.port) ($bound) is missing from LocalMachine\$storeName"
                } elseif ($bound -ne ([string]$Spec.expected_thumbprint).ToUpperInvariant()) {
                    $causes += "https $($Spec.host_name):$($Spec.port) is bound to certificate $bound, not $($Spec.expected_thumbprint)"
                }
            }
        }
        $modules = $manager.GetApplicationHostConfiguration().GetSection('system.webServer/globalModules').GetCollection()
        if (@($modules | Where-Object { $_['name'] -eq 'AspNetCoreModuleV2' }).Count -eq 0) {
            $causes += 'AspNetCoreModuleV2 is missing from IIS (HTTP 500.19: web.config names a module IIS does not know): the hosting bundle was installed before IIS; repair it (hosts.<name>.hostingBundle does)'
        }
    } finally {
        $manager.Dispose()
    }
    $webConfig = [System.IO.Path]::Combine([string]$Spec.runtime_path, 'web.config')
    if (-not [System.IO.File]::Exists($webConfig)) {
        $causes += "web.config is missing from $($Spec.runtime_path)"
    } else {
        $xml = $null
        try { $xml = [xml][System.IO.File]::ReadAllText($webConfig) } catch { $xml = $null }
        if ($null -eq $xml -or $null -eq $xml.SelectSingleNode('/configuration//aspNetCore')) {
            $causes += "$webConfig is not the agent's: it has no aspNetCore element under configuration (replaced by hand?); ``up --refresh`` writes it again"
        }
    }
    return $causes
}

function Get-ServiceCauses($Spec) {
    $causes = @()
    $service = Get-CimInstance -ClassName Win32_Service -Filter "Name='$(([string]$Spec.service_name).Replace("'", "\'"))'"
    if ($null -eq $service) { return @("the service '$($Spec.service_name)' does not exist") }
    if ([string]$service.State -ne 'Running') {
        $causes += "the service '$($Spec.service_name)' is $(([string]$service.State).ToLowerInvariant()): start it (``up --refresh`` restores state Running)"
    }
    return $causes
}
