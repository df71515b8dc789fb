# Helpers shared by the Certificate scripts.
{% include '_accounts.ps1' %}
#
# The store is opened through X509Store (not the Cert: drive) so that the import needs no file:
# the PFX bytes arrive in $Spec from standard input and go straight to X509Certificate2's constructor.

# FileSystemRights.Read (ReadData, ReadAttributes, ReadExtendedAttributes, ReadPermissions): what
# reading a private key file needs. SYSTEM, Administrators and the key's owner keep their entries.
$KeyReadRights = [long]0x20089
$KeptSids = @('S-1-5-18', 'S-1-5-32-544')
# Where machine keys live, by provider: CNG (Microsoft Software Key Storage Provider) and the legacy
# CSPs (CAPI). Both are searched for a key's unique name: see Get-PrivateKeyInfo.
$MachineKeyFolders = [ordered]@{ CNG = 'Microsoft\Crypto\Keys'; CAPI = 'Microsoft\Crypto\RSA\MachineKeys' }

# The key file of a machine key with this unique name, and the provider its folder belongs to.
function Find-MachineKeyFile([string] $Thumbprint, [string] $UniqueName) {
    foreach ($storage in @($MachineKeyFolders.Keys)) {
        $file = Join-Path $env:ProgramData ($MachineKeyFolders[$storage] + '\' + $UniqueName)
        if (Test-Path -LiteralPath $file -PathType Leaf) { return , @($storage, $file) }
    }
    Stop-Operation -Id 'KeyFileNotFound' -Category 'ObjectNotFound' -Property 'private_key_readers' -Message (
        "the private key '$UniqueName' of certificate $Thumbprint has no file under " +
        "$env:ProgramData\Microsoft\Crypto\Keys or \RSA\MachineKeys; it is not a machine key. Import the PFX " +
        'into LocalMachine (this resource does) or remove the certificate and let this resource import it.')
}

function Open-CertificateStore($Spec, [string] $Mode) {
    $store = New-Object System.Security.Cryptography.X509Certificates.X509Store(
        [string]$Spec.store_name, [System.Security.Cryptography.X509Certificates.StoreLocation][string]$Spec.store_location)
    $store.Open([System.Security.Cryptography.X509Certificates.OpenFlags]$Mode)
    return $store
}

function Find-StoreCertificate($Store, [string] $Thumbprint) {
    $found = $Store.Certificates.Find(
        [System.Security.Cryptography.X509Certificates.X509FindType]::FindByThumbprint, $Thumbprint, $false)
    if ($found.Count -eq 0) { return $null }
    return $found[0]
}

# Where the private key lives and whether it can be exported. .NET Framework 4.6 and later open
# every key through CNG and hand out RSACng / ECDsaCng, for a key of a legacy CSP too: the
# Microsoft Software Key Storage Provider reads CAPI keys (learn.microsoft.com, "Key Storage and
# Retrieval"). A PFX without a provider attribute, as OpenSSL and Python's cryptography write it,
# puts an RSA key in the default CSP, with its file in RSA\MachineKeys; CNG's UniqueName is then
# that file's name (viOpsGit/Public CertificateManagement looks up RSA\MachineKeys\<UniqueName> the
# same way). So the file is searched in both folders, and the folder it is in gives key_storage.
function Get-PrivateKeyInfo($Certificate) {
    $info = [ordered]@{ key_storage = $null; key_file = $null; exportable = $null }
    if (-not $Certificate.HasPrivateKey) { return $info }
    $key = [System.Security.Cryptography.X509Certificates.RSACertificateExtensions]::GetRSAPrivateKey($Certificate)
    if ($null -eq $key) {
        $key = [System.Security.Cryptography.X509Certificates.ECDsaCertificateExtensions]::GetECDsaPrivateKey($Certificate)
    }
    if ($key -is [System.Security.Cryptography.RSACng] -or $key -is [System.Security.Cryptography.ECDsaCng]) {
        $policy = $key.Key.ExportPolicy
        $found = Find-MachineKeyFile $Certificate.Thumbprint $key.Key.UniqueName
        $info.exportable = (($policy -band [System.Security.Cryptography.CngExportPolicies]::AllowExport) -ne 0) -or
            (($policy -band [System.Security.Cryptography.CngExportPolicies]::AllowPlaintextExport) -ne 0)
    } elseif ($key -is [System.Security.Cryptography.RSACryptoServiceProvider]) {
        $found = Find-MachineKeyFile $Certificate.Thumbprint $key.CspKeyContainerInfo.UniqueKeyContainerName
        $info.exportable = $key.CspKeyContainerInfo.Exportable
    } else {
        Stop-Operation -Id 'UnsupportedKey' -Category 'NotImplemented' -Property 'pfx' -Message (
            "the private key of certificate $($Certificate.Thumbprint) is neither an RSA nor an ECDSA key of a " +
            'CNG or CSP provider; this resource cannot manage its key file.')
    }
    $info.key_storage = $found[0]
    $info.key_file = $found[1]
    return $info
}

function Resolve-Principal([string] $Principal) {
    try {
        return (ConvertTo-AccountSid $Principal)
    } catch {
        # Translate's IdentityNotMappedException arrives wrapped in a MethodInvocationException.
        $reason = $_.Exception
        while ($null -ne $reason.InnerException) { $reason = $reason.InnerException }
        Stop-Operation -Id 'IdentityNotMapped' -Category 'ObjectNotFound' -Property 'private_key_readers' -Message (
            "private_key_readers: '$Principal': $($reason.Message) Create the account first (a built-in one: give its SID, S-1-...); for " +
            "'IIS AppPool\<pool>' the application pool must exist (make this resource depend on it).")
    }
}

# LSA lookups (a domain account's can be slow) done once per operation, before the owners lock
# (Initialize-ReaderLookups): every operation on a shared object of the host waits for the lock meanwhile.
$ReaderLookups = @{ Names = @{}; DeclaredSids = $null }

# The SID of each declared reader, $null for one that does not resolve (get must not fail on it).
function Get-DeclaredReaderSids($Spec) {
    if ($null -ne $ReaderLookups.DeclaredSids) { return ,$ReaderLookups.DeclaredSids }
    $sids = New-Object System.Collections.Generic.List[object]
    foreach ($name in @($Spec.private_key_readers)) {
        $sid = $null
        try { $sid = (ConvertTo-AccountSid ([string]$name)).Value } catch { $sid = $null }
        $sids.Add($sid)
    }
    $ReaderLookups.DeclaredSids = $sids.ToArray()
    return ,$ReaderLookups.DeclaredSids
}

# A reader's account name (IdentityReference.Translate), its SID when it has none; looked up once.
function Get-ReaderName([System.Security.Principal.SecurityIdentifier] $Sid) {
    if (-not $ReaderLookups.Names.ContainsKey($Sid.Value)) {
        $name = $Sid.Value
        try { $name = $Sid.Translate([System.Security.Principal.NTAccount]).Value } catch { $name = $Sid.Value }
        $ReaderLookups.Names[$Sid.Value] = $name
    }
    return $ReaderLookups.Names[$Sid.Value]
}

# Before Enter-OwnersLock: the names of the key's readers now and of $Sids (those set is about to grant), and
# the declared readers' SIDs. A refusal (UnsupportedKey, KeyFileNotFound) ends the operation here as it would
# under the lock; any other error (a key file removed by another owner during the read) is left to the read
# under the lock, which decides.
function Initialize-ReaderLookups($Spec, [string[]] $Sids) {
    try { [void](Get-CertificateState $Spec) } catch { if (Test-OperationEnd $_.Exception) { throw } }
    foreach ($sid in @($Sids)) { if ($sid) { [void](Get-ReaderName (New-Object System.Security.Principal.SecurityIdentifier $sid)) } }
}

# Accounts with an explicit allow entry that includes Read on the key file, except the kept ones:
# SYSTEM, Administrators, the file's owner and the account running this script, which Windows gives
# full control of a key it creates (whether the owner is that account or Administrators depends on policy).
function Get-KeyReaders([string] $KeyFile) {
    $sections = [System.Security.AccessControl.AccessControlSections]'Access, Owner'
    $security = (New-Object System.IO.FileInfo($KeyFile)).GetAccessControl($sections)
    $owner = $security.GetOwner([System.Security.Principal.SecurityIdentifier]).Value
    $self = [System.Security.Principal.WindowsIdentity]::GetCurrent().User.Value
    $readers = @()
    foreach ($rule in $security.GetAccessRules($true, $false, [System.Security.Principal.SecurityIdentifier])) {
        $sid = $rule.IdentityReference.Value
        if ([string]$rule.AccessControlType -ne 'Allow' -or $KeptSids -contains $sid -or $sid -eq $owner -or $sid -eq $self) { continue }
        if (((ConvertTo-ComparableMask ([long][int]$rule.FileSystemRights)) -band $KeyReadRights) -ne $KeyReadRights) { continue }
        if (@($readers | Where-Object { $_.sid -eq $sid }).Count -gt 0) { continue }
        $readers += [ordered]@{ sid = $sid; name = (Get-ReaderName $rule.IdentityReference) }
    }
    return ,$readers
}

# With PersistKeySet, X509Certificate2Collection.Import writes each private key to a new machine key container
# as it imports (learn.microsoft.com, X509KeyStorageFlags: PersistKeySet, "The key associated with a PFX file is
# persisted when importing a certificate"). A certificate refused before X509Store.Add (ThumbprintMismatch)
# would leave that file in MachineKeys with no certificate pointing to it: each such key is deleted, CngKey.Delete
# for a CNG key (RSACng, also what .NET Fx 4.6+ returns for a CAPI key), PersistKeyInCsp = $false then Dispose for a
# CSP one (learn.microsoft.com, RSACryptoServiceProvider.PersistKeyInCsp). Best effort: the stop that follows is
# the error to report.
function Remove-ImportedKeys($Collection) {
    foreach ($imported in $Collection) {
        if (-not $imported.HasPrivateKey) { continue }
        try {
            $key = [System.Security.Cryptography.X509Certificates.RSACertificateExtensions]::GetRSAPrivateKey($imported)
            if ($null -eq $key) { $key = [System.Security.Cryptography.X509Certificates.ECDsaCertificateExtensions]::GetECDsaPrivateKey($imported) }
            if ($key -is [System.Security.Cryptography.RSACng] -or $key -is [System.Security.Cryptography.ECDsaCng]) {
                $key.Key.Delete()
            } elseif ($key -is [System.Security.Cryptography.RSACryptoServiceProvider]) {
                $key.PersistKeyInCsp = $false
                $key.Dispose()
            }
        } catch {
            continue
        }
    }
}

function Format-UtcIso([datetime] $Moment) {
    return $Moment.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", [System.Globalization.CultureInfo]::InvariantCulture)
}

function Get-CertificateState($Spec) {
    $thumbprint = ([string]$Spec.thumbprint).ToUpperInvariant()
    $state = [ordered]@{
        ensure = 'absent'
        thumbprint = $thumbprint
        store_location = [string]$Spec.store_location
        store_name = [string]$Spec.store_name
    }
    $store = Open-CertificateStore $Spec 'ReadOnly'
    try { $certificate = Find-StoreCertificate $store $thumbprint } finally { $store.Close() }
    if ($null -eq $certificate) { return $state }
    $key = Get-PrivateKeyInfo $certificate
    $readers = @()
    if ($null -ne $key.key_file) { $readers = Get-KeyReaders $key.key_file }
    $state.ensure = 'present'
    $state.subject = $certificate.Subject
    $state.not_after = Format-UtcIso $certificate.NotAfter
    $state.has_private_key = [bool]$certificate.HasPrivateKey
    $state.key_storage = $key.key_storage
    $state.key_file = $key.key_file
    $state.exportable = $key.exportable
    $state.private_key_readers = @($readers)
    $state.reader_sids = Get-DeclaredReaderSids $Spec
    return $state
}

# -- owners (see _owners.ps1) --------------------------------------------------------------------------
#
# A certificate is shared: two stacks, or two agents of one, may import the same PFX (a wildcard
# certificate). Each Certificate resource records itself as an owner, with the readers it declared; a
# certificate that was in the store before any owner came is recorded in found.json with the readers it had.

function Get-CertificateOwnersFolder($Spec) {
    $key = '{0}-{1}-{2}' -f [string]$Spec.store_location, [string]$Spec.store_name, ([string]$Spec.thumbprint).ToUpperInvariant()
    return (Get-OwnersFolder 'Certificate' $key)
}

# The reader SIDs that others hold on the key file: every other owner's declared readers, and the readers
# the certificate had when it was found in the store. This resource never removes them.
function Get-ReadersOfOthers([string] $Folder, [string] $Owner) {
    $sids = New-Object System.Collections.Generic.List[string]
    foreach ($record in (Read-OwnerRecords $Folder)) {
        if ([string]$record.owner -eq $Owner) { continue }
        foreach ($sid in @($record.readers)) { if ($sid) { $sids.Add([string]$sid) } }
    }
    $found = Read-OwnersJson (Get-FoundRecordPath $Folder)
    if ($null -ne $found) { foreach ($sid in @($found.readers)) { if ($sid) { $sids.Add([string]$sid) } } }
    return ,$sids.ToArray()
}

# The state as this resource sees it: readers that only others hold are theirs, not drift of this one.
function Select-OwnReaders($State, [string[]] $OthersSids) {
    if ($State.ensure -eq 'present') {
        $declared = @($State.reader_sids)
        $State.private_key_readers = @($State.private_key_readers | Where-Object { $declared -contains $_.sid -or $OthersSids -notcontains $_.sid })
    }
    return $State
}

# HTTP.sys bindings that present this certificate. HTTP.sys binds a certificate by its hash (the
# thumbprint): HttpSetServiceConfiguration with HTTP_SERVICE_CONFIG_SSL_SET, whose ParamDesc.pSslHash is
# the SHA-1 hash (learn.microsoft.com, HTTP_SERVICE_CONFIG_SSL_PARAM); IIS https bindings are such
# entries too (netsh http show sslcert lists them). HTTP.sys keeps them in the registry, one key per
# binding, with the hash in the binary value SslCertHash: ...\Services\HTTP\Parameters\SslBindingInfo\
# <ip:port> and SslSniBindingInfo\<host:port> (techcommunity.microsoft.com IIS support blog, "SSL bindings
# are randomly getting deleted"). Read there, not parsed from netsh, whose output is translated. Only the
# entries that take it from this store (value SslCertStoreName, 'MY' when absent, as netsh http add sslcert's
# certstorename defaults): the same certificate in another store is another copy, which stays.
function Get-CertificateBindings([string] $Thumbprint, [string] $StoreName) {
    $bindings = New-Object System.Collections.Generic.List[string]
    foreach ($table in @('SslBindingInfo', 'SslSniBindingInfo')) {
        $key = [Microsoft.Win32.Registry]::LocalMachine.OpenSubKey("SYSTEM\CurrentControlSet\Services\HTTP\Parameters\$table")
        if ($null -eq $key) { continue }
        try {
            foreach ($name in $key.GetSubKeyNames()) {
                $binding = $key.OpenSubKey($name)
                if ($null -eq $binding) { continue }
                try {
                    $hash = $binding.GetValue('SslCertHash')
                    $store = [string]$binding.GetValue('SslCertStoreName')
                } finally { $binding.Close() }
                if (-not $store) { $store = 'MY' }
                if ($store -ne $StoreName) { continue }  # (-ne ignores case: 'MY' is 'My')
                if ($hash -is [byte[]] -and (-join ($hash | ForEach-Object { $_.ToString('X2') })) -eq $Thumbprint) { $bindings.Add($name) }
            }
        } finally { $key.Close() }
    }
    return ,$bindings.ToArray()
}
