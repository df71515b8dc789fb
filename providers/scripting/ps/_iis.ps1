# IIS helpers shared by the iis_* resources (included after prelude.ps1).
#
# Microsoft.Web.Administration's ServerManager, loaded from inetsrv, rather than a module: it works
# in a non-interactive WinRM session without a profile. The WebAdministration module's IIS: drive is
# unreliable there (its provider initialises per session and fails intermittently), and the
# IISAdministration module is not on every Windows Server 2016/2019 image.

function Import-IisAdministration {
    $dll = Join-Path $env:windir 'system32\inetsrv\Microsoft.Web.Administration.dll'
    if (-not (Test-Path -LiteralPath $dll -PathType Leaf)) {
        Stop-Operation -Id 'IisNotInstalled' -Category 'NotInstalled' -Message "IIS is not installed on this host ($dll is missing); install the Web-Server feature first (WindowsFeature resource)"
    }
    [void][System.Reflection.Assembly]::LoadFrom($dll)
}

function Test-IisCommitConflict([System.Exception] $Exception) {
    # Another writer (IIS Manager, a parallel operation of the same stack) committed after this
    # ServerManager read applicationHost.config: CommitChanges throws System.IO.FileLoadException
    # ("Cannot commit configuration changes because the file has changed on disk"; microsoft/IIS.Administration#324),
    # or, while the other writer still holds the file, a COMException with HRESULT 0x80070020 (sharing
    # violation; jexuswebserver/JexusManager#164). Matched on the type and HRESULT only: the messages are
    # translated on a localized Windows.
    for ($e = $Exception; $null -ne $e; $e = $e.InnerException) {
        if ($e -is [System.IO.FileLoadException] -or $e.HResult -eq -2147024864) { return $true }
    }
    return $false
}

function Invoke-IisChange {
    # $Change gets a fresh ServerManager, changes what differs and returns @{ Changes = @(...) };
    # the commit happens here when anything changed. On a conflict everything is read and decided
    # again with a new ServerManager, so parallel operations of one `pulumi up` all succeed.
    param([Parameter(Mandatory = $true)] [scriptblock] $Change, [int] $Attempts = 10)
    for ($attempt = 1; ; $attempt++) {
        $manager = New-Object Microsoft.Web.Administration.ServerManager
        try {
            $result = & $Change $manager
            if (@($result.Changes).Count -gt 0) { $manager.CommitChanges() }
            return $result
        } catch {
            if ($attempt -ge $Attempts -or -not (Test-IisCommitConflict $_.Exception)) { throw }
            Start-Sleep -Milliseconds (100 * $attempt + (Get-Random -Maximum 100))
        } finally {
            $manager.Dispose()
        }
    }
}

function Get-IisObjectState([scriptblock] $Read) {
    # Right after a commit WAS may not know a new pool or site yet: State throws 0x800710D8 for a moment.
    for ($i = 0; $i -lt 20; $i++) {
        try { return [string](& $Read) } catch { Start-Sleep -Milliseconds 250 }
    }
    return 'Unknown'
}

function Wait-IisObjectState([scriptblock] $Read, [string[]] $Final) {
    # Start() and Stop() return while the object is still Starting or Stopping.
    $state = Get-IisObjectState $Read
    for ($i = 0; $i -lt 40 -and $Final -notcontains $state; $i++) {
        Start-Sleep -Milliseconds 250
        $state = Get-IisObjectState $Read
    }
    return $state
}

function Start-IisSite($Site) {
    # Right after a commit that created the site, WAS may not know it yet: Start() throws
    # 0x800710D8 (ERROR_OBJECT_NOT_FOUND, "The object identifier does not represent a valid object")
    # for a moment, as State does above. Retried for up to 10 s; any other error is the caller's.
    Invoke-WhenWasKnows { [void]$Site.Start() }
}

function Stop-IisSite($Site) {
    # Stop() of a site just committed throws the same 0x800710D8 as Start() until WAS knows it: the same retry.
    Invoke-WhenWasKnows { [void]$Site.Stop() }
}

# Runs $Control (a Start() or Stop() of a site or pool) again while it throws 0x800710D8: WAS has not
# learnt of the object the last commit created yet. Up to 40 tries 250 ms apart; any other error is thrown.
function Invoke-WhenWasKnows([scriptblock] $Control) {
    for ($i = 0; ; $i++) {
        try { & $Control; return }
        catch {
            $notYet = $false
            for ($e = $_.Exception; $null -ne $e; $e = $e.InnerException) { if ($e.HResult -eq -2147020584) { $notYet = $true } }
            if (-not $notYet -or $i -ge 40) { throw }
            Start-Sleep -Milliseconds 250
        }
    }
}

# A certificate hash as IIS's Bindings.Add takes it (byte[]) and as HTTP.sys and the stores show it (hex).
function ConvertTo-HashBytes([string] $Hex) {
    $bytes = New-Object byte[] ($Hex.Length / 2)
    for ($i = 0; $i -lt $bytes.Length; $i++) { $bytes[$i] = [Convert]::ToByte($Hex.Substring(2 * $i, 2), 16) }
    return ,$bytes
}

function ConvertFrom-HashBytes([byte[]] $Bytes) {
    if ($null -eq $Bytes -or $Bytes.Length -eq 0) { return $null }
    return (-join ($Bytes | ForEach-Object { $_.ToString('X2') }))
}

function Get-BindingEndpoint([string] $Protocol, [string] $Information) {
    # http and https bindingInformation is '<ip or *>:<port>:<host>', an IPv6 address in brackets. The
    # WCF non-HTTP activation bindings are not: net.tcp '808:*', net.pipe '*', net.msmq and
    # msmq.formatname 'localhost' (learn.microsoft.com, "Configuring WAS for use with WCF"); HTTP.sys
    # never serves them, so they have no endpoint here ($null).
    if ($Protocol -ne 'http' -and $Protocol -ne 'https') { return $null }
    if ($Information.StartsWith('[')) {
        $close = $Information.IndexOf(']')
        $ip = $Information.Substring(1, $close - 1)
        $rest = $Information.Substring($close + 2)
    } else {
        $ip, $rest = $Information.Split(':', 2)
    }
    $port, $hostName = $rest.Split(':', 2)
    return @{ Ip = $ip; Port = [int]$port; HostName = ([string]$hostName).ToLowerInvariant() }
}

function Get-SslBindingKey($Binding) {
    # The HTTP.sys certificate binding an https binding uses (netsh http show sslcert): '<host>:<port>'
    # with SNI (sslFlags bit 1), otherwise '<ip>:<port>' with 0.0.0.0 for '*', shared by every
    # non-SNI https binding on that port, whatever its host name.
    if ($Binding.Protocol -ne 'https') { return $null }
    return Get-SslEndpointKey $Binding.BindingInformation ([int]$Binding.GetAttributeValue('sslFlags'))
}

function Get-SslEndpointKey([string] $Information, [int] $SslFlags) {
    # Get-SslBindingKey for an https binding given by its bindingInformation and sslFlags.
    $endpoint = Get-BindingEndpoint 'https' $Information
    if (($SslFlags -band 1) -eq 1) { return "$($endpoint.HostName):$($endpoint.Port)" }
    $address = $endpoint.Ip
    if ($address -eq '*') { $address = '0.0.0.0' }
    if ($address.Contains(':')) { $address = "[$address]" }
    return "$($address):$($endpoint.Port)".ToLowerInvariant()
}

function Remove-IisBinding($Manager, $Site, $Binding) {
    # Bindings.Remove($b) is the collection's inherited Remove: it leaves the HTTP.sys certificate
    # binding behind, pointing at a certificate that may be deleted next. BindingCollection.Remove($b,
    # $removeConfigOnly) with $false deletes it too (the default of Remove-IISSiteBinding, whose
    # -RemoveConfigOnly keeps it; learn.microsoft.com Remove-IISSiteBinding). An entry another https
    # binding still uses (a shared 0.0.0.0:443) is kept: $true.
    $key = Get-SslBindingKey $Binding
    $shared = $false
    if ($null -ne $key) {
        # (PowerShell names ignore case: the loop variable must not be called $site.)
        foreach ($candidate in $Manager.Sites) {
            foreach ($other in $candidate.Bindings) {
                if ($candidate.Name -eq $Site.Name -and $other.Protocol -eq $Binding.Protocol -and $other.BindingInformation -eq $Binding.BindingInformation) { continue }
                if ((Get-SslBindingKey $other) -eq $key) { $shared = $true }
            }
        }
    }
    [void]$Site.Bindings.Remove($Binding, $shared)
}
