# The loop the bootstrap (bootstrap.ps1) reads from the first line of stdin and runs. It carries no data
# and never changes; operations arrive on stdin for as long as stdin stays open, so powershell.exe starts
# once per shell.
#   request  (stdin, one line):  <id> <base64 of UTF-8 JSON {"script": ..., "input": ...}>
#   response (stdout, one line): #usercube-response <id> <working set bytes> <base64 of UTF-8 JSON envelope>
# Each response line starts after a line feed, so stray output cannot join it.
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
try { [Console]::OutputEncoding = New-Object System.Text.UTF8Encoding $false } catch { }
Add-Type -AssemblyName System.Web.Extensions
$json = New-Object System.Web.Script.Serialization.JavaScriptSerializer
$json.MaxJsonLength = [int]::MaxValue

# Requests run side by side in a runspace pool (the client bounds how many it sends at once). Each one
# gets a new PowerShell instance whose script runs in a new local scope (AddScript(..., $true)): its
# variables, functions and preference variables end with it. What PowerShell keeps per runspace (loaded
# assemblies, imported modules) is kept, as it would be in any long-lived session.
$pool = [RunspaceFactory]::CreateRunspacePool(1, 32)
$pool.Open()
$events = New-Object 'System.Collections.Concurrent.BlockingCollection[object]'

# stdin is read on a runspace of its own, so the loop below can write responses while no request comes.
$reader = [PowerShell]::Create()
[void]$reader.AddScript({
    param($Events)
    $stdin = [Console]::In
    for ($line = $stdin.ReadLine(); $null -ne $line; $line = $stdin.ReadLine()) {
        $Events.Add(@{ Kind = 'request'; Line = $line })
    }
    $Events.Add(@{ Kind = 'end' })
}.ToString()).AddArgument($events)
$readerHandle = $reader.BeginInvoke()

# Runs one operation. The script ends by throwing the exception Complete-Operation or Stop-Operation
# (prelude.ps1) builds, which carries the envelope; never by `exit`, which would end this process.
$operation = {
    param($Events, $Id, $Script, $InputJson)
    $envelope = $null
    try {
        $null = & ([scriptblock]::Create($Script)) -InputJson $InputJson
        $failure = @{ id = 'NoResult'; category = 'InvalidResult'; property = $null; message = 'the script ended without Complete-Operation or Stop-Operation' }
        $envelope = (New-Object System.Web.Script.Serialization.JavaScriptSerializer).Serialize(@{ ok = $false; error = $failure })
    } catch {
        if ($_.Exception.Data.Contains('UsercubeEnvelope')) {
            $envelope = [string]$_.Exception.Data['UsercubeEnvelope']
        } else {
            $failure = @{ id = 'UnexpectedError'; category = [string]$_.CategoryInfo.Category; property = $null; message = [string]$_.Exception.Message }
            $envelope = (New-Object System.Web.Script.Serialization.JavaScriptSerializer).Serialize(@{ ok = $false; error = $failure })
        }
    } finally {
        $Events.Add(@{ Kind = 'response'; Id = $Id; Envelope = $envelope })
    }
}.ToString()

function Write-Response([string] $Id, [string] $Envelope) {
    $encoded = [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes($Envelope))
    [Console]::Out.Write("`n#usercube-response $Id $([Environment]::WorkingSet) $encoded`n")
    [Console]::Out.Flush()
}

$running = @{}
$open = $true
while ($open -or $running.Count -gt 0) {
    $next = $events.Take()
    if ($next.Kind -eq 'request') {
        $line = [string]$next.Line
        $space = $line.IndexOf(' ')
        $id = $line.Substring(0, [Math]::Max($space, 0))
        try {
            $request = $json.DeserializeObject([Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($line.Substring($space + 1))))
            $instance = [PowerShell]::Create()
            $instance.RunspacePool = $pool
            [void]$instance.AddScript($operation, $true).AddArgument($events).AddArgument($id).AddArgument($request['script']).AddArgument($request['input'])
            $running[$id] = @{ Instance = $instance; Handle = $instance.BeginInvoke() }
        } catch {
            $failure = @{ id = 'BadRequest'; category = 'InvalidData'; property = $null; message = "request $id is not base64 of a JSON request: $($_.Exception.Message)" }
            Write-Response $id ($json.Serialize(@{ ok = $false; error = $failure }))
        }
    } elseif ($next.Kind -eq 'response') {
        $job = $running[$next.Id]
        $running.Remove($next.Id)
        try { [void]$job.Instance.EndInvoke($job.Handle) } catch { }
        $job.Instance.Dispose()
        Write-Response $next.Id $next.Envelope
    } else {
        $open = $false
    }
}
$pool.Close()
