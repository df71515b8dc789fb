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
    # "Cannot commit configuration changes because the file has changed on disk", or, while the
    # other writer still holds the file, "Cannot write configuration file" (sharing violation, 0x80070020).
    for ($e = $Exception; $null -ne $e; $e = $e.InnerException) {
        if ($e.Message -match 'changed on disk|Cannot write configuration file' -or $e.HResult -eq -2147024864) { return $true }
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
