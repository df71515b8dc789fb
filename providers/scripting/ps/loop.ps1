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

# Children must not get the request pipe as their stdin: while the reader below waits in a synchronous
# ReadFile on it, a child's C runtime start-up (GetFileType on its standard handles) blocks on the same file
# object until the next request arrives (python/cpython#78961, libuv#1313). The reader keeps the handle
# [Console]::In holds (stage 1 opened it); the process's standard input becomes none, and the pipe handle
# is no longer inherited. P/Invoke through Reflection.Emit: no compiler run, unlike Add-Type.
$stdin = [Console]::In
$native = [AppDomain]::CurrentDomain.DefineDynamicAssembly((New-Object Reflection.AssemblyName 'UsercubeLoop'), 'Run').DefineDynamicModule('UsercubeLoop').DefineType('UsercubeLoop.Kernel32', 'Public, Class')
[void]$native.DefinePInvokeMethod('GetStdHandle', 'kernel32.dll', 'Public, Static, PinvokeImpl', 'Standard', [IntPtr], [Type[]]@([int]), 'Winapi', 'Auto')
[void]$native.DefinePInvokeMethod('SetStdHandle', 'kernel32.dll', 'Public, Static, PinvokeImpl', 'Standard', [bool], [Type[]]@([int], [IntPtr]), 'Winapi', 'Auto')
[void]$native.DefinePInvokeMethod('SetHandleInformation', 'kernel32.dll', 'Public, Static, PinvokeImpl', 'Standard', [bool], [Type[]]@([IntPtr], [int], [int]), 'Winapi', 'Auto')
$kernel32 = $native.CreateType()
$STD_INPUT_HANDLE = -10
[void]$kernel32::SetHandleInformation($kernel32::GetStdHandle($STD_INPUT_HANDLE), 1, 0)  # HANDLE_FLAG_INHERIT off
[void]$kernel32::SetStdHandle($STD_INPUT_HANDLE, [IntPtr]::Zero)
# Nor its response pipe and its error stream. .NET Framework's Process.Start (UseShellExecute = $false) calls
# CreateProcess with bInheritHandles TRUE, and that hands the child every inheritable handle of this process,
# not only those STARTUPINFO names (learn.microsoft.com, CreateProcessW: bInheritHandles; "Handle Inheritance"):
# a child holding the stdout pipe keeps the WinRM command from ending after this process does, and could write
# into the framed responses. Only inheritance stops: this process still writes to both.
$STD_OUTPUT_HANDLE = -11
$STD_ERROR_HANDLE = -12
[void]$kernel32::SetHandleInformation($kernel32::GetStdHandle($STD_OUTPUT_HANDLE), 1, 0)
[void]$kernel32::SetHandleInformation($kernel32::GetStdHandle($STD_ERROR_HANDLE), 1, 0)

# Responses go out as one write each on a stream of our own; anything else that writes to the console's
# stdout writer (nothing should: pool runspaces have no console host) goes nowhere.
$stdout = [Console]::OpenStandardOutput()
[Console]::SetOut([IO.TextWriter]::Null)

# Requests run side by side in a runspace pool (the client bounds how many it sends at once). Each one
# gets a new PowerShell instance whose script runs in a new local scope (AddScript(..., $true)): its
# variables, functions and preference variables end with it. What PowerShell keeps per runspace (loaded
# assemblies, imported modules) is kept, as it would be in any long-lived session. CreateDefault2 loads
# the core commands only; modules load on first use.
$pool = [RunspaceFactory]::CreateRunspacePool([Management.Automation.Runspaces.InitialSessionState]::CreateDefault2())
[void]$pool.SetMaxRunspaces(32)
$pool.Open()
$events = New-Object 'System.Collections.Concurrent.BlockingCollection[object]'

# stdin is read on a runspace of its own, so the loop below can write responses while no request comes.
$reader = [PowerShell]::Create()
[void]$reader.AddScript({
    param($Events, $Stdin)
    try {
        for ($line = $Stdin.ReadLine(); $null -ne $line; $line = $Stdin.ReadLine()) {
            $Events.Add(@{ Kind = 'request'; Line = $line })
        }
    } finally {
        $Events.Add(@{ Kind = 'end' })
    }
}.ToString()).AddArgument($events).AddArgument($stdin)
$readerHandle = $reader.BeginInvoke()

# Runs one operation; its one argument is a dictionary, because transcription records the value of every
# parameter bound through the API, and a dictionary is recorded as its type name only (the input JSON
# carries secrets). The script ends by throwing the exception Complete-Operation or Stop-Operation
# (prelude.ps1) builds, which carries the envelope; never by `exit`, which would end this process.
$operation = {
    param($UsercubeRequest)
    $usercubeEnvelope = $null
    try {
        $null = & ([scriptblock]::Create($UsercubeRequest.Script)) -InputJson $UsercubeRequest.InputJson
    } catch {
        for ($e = $_.Exception; $null -ne $e; $e = $e.InnerException) {
            if ($e.Data.Contains('UsercubeEnvelope')) { $usercubeEnvelope = [string]$e.Data['UsercubeEnvelope']; break }
        }
        if ($null -eq $usercubeEnvelope) {
            $failure = @{ id = 'UnexpectedError'; category = [string]$_.CategoryInfo.Category; property = $null; message = [string]$_.Exception.Message }
            $usercubeEnvelope = (New-Object System.Web.Script.Serialization.JavaScriptSerializer).Serialize(@{ ok = $false; error = $failure })
        }
    } finally {
        if ($null -eq $usercubeEnvelope) {
            # The script returned (or left through `exit` or `break`, which no catch sees) without an envelope.
            $failure = @{ id = 'NoResult'; category = 'InvalidResult'; property = $null; message = 'the script ended without Complete-Operation or Stop-Operation' }
            $usercubeEnvelope = (New-Object System.Web.Script.Serialization.JavaScriptSerializer).Serialize(@{ ok = $false; error = $failure })
        }
        # Every throw, the envelope's included, lands in this runspace's $Error: do not keep them.
        $global:Error.Clear()
        $UsercubeRequest.Events.Add(@{ Kind = 'response'; Id = $UsercubeRequest.Id; Envelope = $usercubeEnvelope })
    }
}.ToString()

function Write-Response([string] $Id, [string] $Envelope) {
    $encoded = [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes($Envelope))
    $frame = [Text.Encoding]::ASCII.GetBytes("`n#usercube-response $Id $([Environment]::WorkingSet) $encoded`n")
    $stdout.Write($frame, 0, $frame.Length)
    $stdout.Flush()
}

function New-FailureEnvelope([string] $Id, [string] $Message) {
    $json.Serialize(@{ ok = $false; error = @{ id = $Id; category = 'InvalidData'; property = $null; message = $Message } })
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
        } catch {
            Write-Response $id (New-FailureEnvelope 'BadRequest' "request $id is not base64 of a JSON request: $($_.Exception.Message)")
            continue
        }
        $instance = [PowerShell]::Create()
        try {
            $instance.RunspacePool = $pool
            $argument = @{ Events = $events; Id = $id; Script = $request['script']; InputJson = $request['input'] }
            [void]$instance.AddScript($operation, $true).AddArgument($argument)
            $running[$id] = @{ Instance = $instance; Handle = $instance.BeginInvoke() }
        } catch {
            $instance.Dispose()
            Write-Response $id (New-FailureEnvelope 'NotStarted' "request $id could not be started: $($_.Exception.Message)")
        }
    } elseif ($next.Kind -eq 'response') {
        $job = $running[$next.Id]
        if ($null -ne $job) {
            $running.Remove($next.Id)
            try { [void]$job.Instance.EndInvoke($job.Handle) } catch { }
            $job.Instance.Dispose()
        }
        Write-Response $next.Id $next.Envelope
    } else {
        $open = $false
    }
}
$pool.Close()
