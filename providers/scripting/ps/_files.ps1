# File writes that survive antivirus, indexers and file watchers holding the file, and a ReplaceFileW that
# fails half-way: shared by the SettingsFile scripts and _owners.ps1 (included after prelude.ps1).

# The Win32 error code of a failed .NET file call: the HResult of its innermost exception (an IOException
# carries 0x80070020 for a sharing violation, an UnauthorizedAccessException 0x80070005).
function Get-Win32Code($ErrorRecord) {
    $reason = $ErrorRecord.Exception
    while ($null -ne $reason.InnerException) { $reason = $reason.InnerException }
    return ($reason.HResult -band 0xFFFF)
}

# Access denied (5), sharing (32) and lock (33) violations from antivirus, indexers or file watchers are
# transient: retried five times, 100 ms more each time (as LLVM's sys::fs rename does for ReplaceFileW).
$TransientFileErrors = @(5, 32, 33)

# File.Move is MoveFileEx, which fails like any open of the file while another process holds it.
# Deletes a file the run no longer needs (a replaced version under a temporary name), retrying what an
# antivirus or indexer holding the just-renamed file causes; a file still held is left for `remove` to sweep
# (its permissions are the protected ones): the content is already in place, the run must not fail for it.
function Remove-FileQuietly([string] $Path) {
    for ($attempt = 1; $attempt -le 5; $attempt++) {
        try {
            if (Test-Path -LiteralPath $Path -PathType Leaf) { [System.IO.File]::Delete($Path) }
            return
        } catch {
            if ($TransientFileErrors -notcontains (Get-Win32Code $_)) { return }
            Start-Sleep -Milliseconds (100 * $attempt)
        }
    }
}

function Invoke-FileMove([string] $Source, [string] $Target) {
    $attempt = 0
    while ($true) {
        $attempt++
        try {
            [System.IO.File]::Move($Source, $Target)
            return
        } catch {
            if ($attempt -ge 5 -or $TransientFileErrors -notcontains (Get-Win32Code $_)) { throw }
            Start-Sleep -Milliseconds (100 * $attempt)
        }
    }
}

# File.Replace is ReplaceFileW, which can fail half-way (learn.microsoft.com, ReplaceFileW, "Return
# value"): 1175 ERROR_UNABLE_TO_REMOVE_REPLACED leaves both files under their names; 1176
# ERROR_UNABLE_TO_MOVE_REPLACEMENT with a backup name leaves both files under their names too; 1177
# ERROR_UNABLE_TO_MOVE_REPLACEMENT_2 leaves the replaced file under the backup name and the new content
# under the temporary name. 1175 and 1176 change nothing, so they are retried like a sharing violation; when
# the target is gone the new content is moved into place (with the same retries: the file watcher that failed
# the replace can hold it a moment longer), so the file is never lost.
function Invoke-FileReplace([string] $Source, [string] $Target, [string] $Backup) {
    $attempt = 0
    while ($true) {
        $attempt++
        try {
            [System.IO.File]::Replace($Source, $Target, $Backup)
            return
        } catch {
            if ((Test-Path -LiteralPath $Source -PathType Leaf) -and -not (Test-Path -LiteralPath $Target)) {
                Invoke-FileMove $Source $Target
                return
            }
            $code = Get-Win32Code $_
            if ($attempt -ge 5 -or @($TransientFileErrors + 1175 + 1176) -notcontains $code) { throw }
            Start-Sleep -Milliseconds (100 * $attempt)
        }
    }
}

# '.<name>.<8 hex digits>.tmp' next to the target: the new content before it is swapped in, and the previous
# version when no backup is kept. 14 characters longer than the path, which SettingsFileModel allows for.
function New-TemporaryPath([string] $Path) {
    $name = '.' + [System.IO.Path]::GetFileName($Path) + '.' + [guid]::NewGuid().ToString('N').Substring(0, 8) + '.tmp'
    return [System.IO.Path]::Combine([System.IO.Path]::GetDirectoryName($Path), $name)
}
