# Shared by every operation script (included by the runner, never sent alone).
# Progress records would otherwise arrive as CLIXML on stderr; errors must stop the script
# so that the trap below reports them in the JSON envelope.
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
Set-StrictMode -Version 3.0

function ConvertTo-SpecObject($Value) {
    # JavaScriptSerializer (a .NET method, not a cmdlet: Module Logging records a cmdlet's parameter
    # bindings, secrets included, in event 4103) gives dictionaries and object[]; the scripts read
    # $Spec.name as from ConvertFrom-Json. PSNoteProperty::new, not Add-Member, for the same reason.
    if ($Value -is [System.Collections.IDictionary]) {
        $object = New-Object PSObject
        foreach ($key in $Value.Keys) {
            $object.PSObject.Properties.Add([System.Management.Automation.PSNoteProperty]::new([string]$key, (ConvertTo-SpecObject $Value[$key])))
        }
        return $object
    }
    if ($Value -is [object[]]) { return ,@(foreach ($item in $Value) { ConvertTo-SpecObject $item }) }
    return $Value
}

$JsonSerializer = New-Object System.Web.Script.Serialization.JavaScriptSerializer
$JsonSerializer.MaxJsonLength = [int]::MaxValue  # the default is 2 MB of text
$Spec = ConvertTo-SpecObject ($JsonSerializer.DeserializeObject($InputJson))

function Complete-Operation {
    param(
        [Parameter(Mandatory = $true)] $State,
        [bool] $Changed = $false,
        [object[]] $Changes = @()
    )
    $envelope = [ordered]@{ ok = $true; changed = $Changed; changes = @($Changes); state = $State }
    [Console]::Out.Write(($envelope | ConvertTo-Json -Depth 20 -Compress))
    exit 0
}

function Stop-Operation {
    param(
        [Parameter(Mandatory = $true)] [string] $Id,
        [Parameter(Mandatory = $true)] [string] $Message,
        [string] $Category = 'InvalidOperation',
        [string] $Property = $null
    )
    $failure = [ordered]@{ id = $Id; category = $Category; message = $Message; property = $Property }
    [Console]::Out.Write(([ordered]@{ ok = $false; error = $failure } | ConvertTo-Json -Depth 5 -Compress))
    exit 1
}

function New-Change {
    param([string] $Property, $Before, $After, [bool] $Secret = $false)
    if ($Secret) { $Before = '[secret]'; $After = '[secret]' }
    [ordered]@{ property = $Property; before = $Before; after = $After }
}

trap {
    Stop-Operation -Id 'UnexpectedError' -Category ([string]$_.CategoryInfo.Category) -Message $_.Exception.Message
}
