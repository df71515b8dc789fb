# Helpers shared by the Directory scripts.

function Get-DirectoryState($Spec) {
    $path = [string]$Spec.path
    $state = [ordered]@{ ensure = 'absent'; path = $path; subfolders = @() }
    if (-not (Test-Path -LiteralPath $path -PathType Container)) {
        if (Test-Path -LiteralPath $path) {
            Stop-Operation -Id 'PathIsNotAFolder' -Property 'path' -Message "'$path' exists and is a file, not a folder; choose another path or move the file away."
        }
        return $state
    }
    $state.ensure = 'present'
    $present = @()
    foreach ($name in @($Spec.subfolders)) {
        $full = [System.IO.Path]::Combine($path, [string]$name)
        if (Test-Path -LiteralPath $full -PathType Container) {
            $present += [string]$name
        } elseif (Test-Path -LiteralPath $full) {
            Stop-Operation -Id 'PathIsNotAFolder' -Property 'subfolders' -Message "'$full' exists and is a file, not a folder; move the file away or rename the sub-folder."
        }
    }
    $state.subfolders = $present
    return $state
}

# Creates $Path and any missing parent, and returns every folder it created (parents first), so
# that destroy can later remove exactly those, and only while they are empty.
function New-FolderTree([string] $Path) {
    $missing = @()
    $current = $Path
    while ($current -and -not (Test-Path -LiteralPath $current -PathType Container)) {
        if (Test-Path -LiteralPath $current) {
            Stop-Operation -Id 'PathIsNotAFolder' -Property 'path' -Message "'$current' exists and is a file, not a folder."
        }
        $missing = @($current) + $missing
        $current = [System.IO.Path]::GetDirectoryName($current)
    }
    foreach ($folder in $missing) {
        [void][System.IO.Directory]::CreateDirectory($folder)
    }
    return ,$missing
}
