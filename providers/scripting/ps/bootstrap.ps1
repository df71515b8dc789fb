# powershell.exe -EncodedCommand <this>: the whole command line, fixed and without data. The loop it runs
# (loop.ps1) comes as the first line of stdin, base64 of UTF-8: cmd.exe, which WinRS starts commands
# through, caps a command line at 8191 characters, and the loop is longer than that once encoded.
$ErrorActionPreference = 'Stop'
& ([scriptblock]::Create([Text.Encoding]::UTF8.GetString([Convert]::FromBase64String([Console]::In.ReadLine()))))
