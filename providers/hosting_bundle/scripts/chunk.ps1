param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_common.ps1' %}

# One chunk of the upload: its bytes go at its offset of the staging file. The file is cut to the offset first,
# so a chunk sent again (its answer was lost) lands where it did the first time.
$root = Get-StagingRoot
Initialize-StagingRoot $root
$partial = Get-PartialPath $root ([string]$Spec.sha256)
$offset = [long]$Spec.offset
[byte[]] $data = [System.Convert]::FromBase64String([string]$Spec.data)
if ($offset -eq 0) {
    # A new upload: what was held of other installers is of no use any more.
    foreach ($other in [System.IO.Directory]::GetFiles($root, 'upload-*.partial')) {
        if (-not $other.Equals($partial, [System.StringComparison]::OrdinalIgnoreCase)) { [System.IO.File]::Delete($other) }
    }
}
$written = $false
$stream = New-Object System.IO.FileStream($partial, [System.IO.FileMode]::OpenOrCreate, [System.IO.FileAccess]::Write, [System.IO.FileShare]::None)
try {
    $held = $stream.Length
    if ($offset -le $held -and $offset + $data.Length -le [long]$Spec.size) {
        $stream.SetLength($offset)
        $stream.Position = $offset
        $stream.Write($data, 0, $data.Length)
        $stream.Flush($true)
        $held = $stream.Length
        $written = $true
    }
} finally {
    $stream.Dispose()
}
if (-not $written) {
    Stop-Operation -Id 'UploadOutOfOrder' -Property 'size' -Message "a chunk of $($data.Length) bytes at offset $offset does not follow the $held bytes held of $($Spec.size); run the operation again (it continues from what the host holds)"
}
Complete-Operation -State ([ordered]@{ held_bytes = $held }) -Changed $true -Changes @(New-Change -Property 'held_bytes' -Before $offset -After $held)
