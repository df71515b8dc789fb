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

function Complete-Operation {
    param(
        [Parameter(Mandatory = $true)] $State,
        [bool] $Changed = $false,
        [object[]] $Changes = @()
    )
    $envelope = [ordered]@{ ok = $true; changed = $Changed; changes = @($Changes); state = $State }
    Exit-Operation ($envelope | ConvertTo-Json -Depth 20 -Compress)
}

function Stop-Operation {
    param(
        [Parameter(Mandatory = $true)] [string] $Id,
        [Parameter(Mandatory = $true)] [string] $Message,
        [string] $Category = 'InvalidOperation',
        [string] $Property = $null
    )
    $failure = [ordered]@{ id = $Id; category = $Category; message = $Message; property = $Property }
    Exit-Operation ([ordered]@{ ok = $false; error = $failure } | ConvertTo-Json -Depth 5 -Compress)
}

function Exit-Operation([string] $Envelope) {
    # Ends the operation wherever it is called from. The bootstrap's loop runs many operations in one
    # powershell.exe, so a script never calls `exit` (it would end the loop's process, or in a hosted
    # runspace end the pipeline without a result); it throws this exception, which carries the envelope,
    # and the loop's wrapper answers with it. A catch block that swallows every error would stop it, so
    # no script calls Complete-Operation or Stop-Operation inside a try whose catch does not rethrow.
    $end = New-Object System.OperationCanceledException 'the operation has completed'
    $end.Data['UsercubeEnvelope'] = $Envelope
    # Under a caller's SilentlyContinue or Ignore a throw would be dropped; with Stop it reaches the loop.
    $ErrorActionPreference = 'Stop'
    throw $end
}

function New-Change {
    param([string] $Property, $Before, $After, [bool] $Secret = $false)
    if ($Secret) { $Before = '[secret]'; $After = '[secret]' }
    [ordered]@{ property = $Property; before = $Before; after = $After }
}

trap {
    # The end of the operation (Exit-Operation) passes through to the loop; any other error becomes one.
    if (Test-OperationEnd $_.Exception) { break }
    Stop-Operation -Id 'UnexpectedError' -Category ([string]$_.CategoryInfo.Category) -Message $_.Exception.Message
}

function Test-OperationEnd([System.Exception] $Exception) {
    # (wrapped in a MethodInvocationException when it crossed a script block run as a .NET delegate)
    for ($e = $Exception; $null -ne $e; $e = $e.InnerException) {
        if ($e.Data.Contains('UsercubeEnvelope')) { return $true }
    }
    return $false
}

# After the functions: a failure here goes through the trap, which needs Stop-Operation defined.
$JsonSerializer = New-Object System.Web.Script.Serialization.JavaScriptSerializer
$JsonSerializer.MaxJsonLength = [int]::MaxValue  # the default is 2 MB of text
$Spec = ConvertTo-SpecObject ($JsonSerializer.DeserializeObject($InputJson))

