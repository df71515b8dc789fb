# The body of a resource's chunk.ps1 (after its staging include, which defines Initialize-StagingFolder, and
# $folder, its staging folder): one chunk of an upload (providers/framework/upload.py). Its bytes go at its
# offset of the staging file. The file is cut to the offset first, so a chunk sent again (its answer was lost)
# lands where it did the first time.
Initialize-StagingFolder $folder
$partial = Get-PartialPath $folder ([string]$Spec.sha256)
$offset = [long]$Spec.offset
[byte[]] $data = [System.Convert]::FromBase64String([string]$Spec.data)
if ($offset -eq 0) {
    # A new upload: what was held of other files is of no use any more, and its own file is made anew by this
    # operation (owned by Administrators, the folder's DACL inherited), never one made before the folders were
    # safe (the owner of a file may open it wherever it lies).
    foreach ($other in [System.IO.Directory]::GetFiles($folder, 'upload-*.partial')) {
        [System.IO.File]::Delete($other)
    }
}
$written = $false
$stream = [System.IO.FileStream]::new($partial, [System.IO.FileMode]::OpenOrCreate, [System.IO.FileAccess]::Write, [System.IO.FileShare]::None)
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
