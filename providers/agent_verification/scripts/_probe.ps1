# The request the check makes from the host itself: TCP to the binding's address, TLS 1.2 with the agent's host name
# as the server name (SNI), then one HTTP/1.1 GET with that host name in the Host header.
#
# Why not HttpWebRequest (or Invoke-WebRequest, built on it):
# - https://127.0.0.1/ with the Host header set sends no SNI: .NET Framework takes the TLS server name from the URI's
#   host, and an IP literal is never sent as a server name (RFC 6066, section 3). The agents' https bindings are SNI
#   bindings (sslFlags 1: HTTP.sys picks the certificate by host name and port), so that handshake gets no
#   certificate at all, however healthy the agent is.
# - https://<host name>/ resolves the name through DNS, which may point at a load balancer or another node: the
#   check would judge another machine.
# - its certificate callback (ServicePointManager.ServerCertificateValidationCallback) runs on a thread of the .NET
#   thread pool; a PowerShell script block there has no runspace and fails ("There is no Runspace available to run
#   scripts in this thread"), and ServicePoint.Certificate is only the certificate of the last connection.
# So: a TcpClient to the address, an SslStream (AuthenticateAsClient(hostName, ..., Tls12): the server name is the
# host name, TLS 1.2 asked for explicitly, no process-wide ServicePointManager setting), and the request written by
# hand. The certificate served is read from SslStream.RemoteCertificate after the handshake and compared with the
# one the stack bound; the stream's validation callback is IL emitted below, so no PowerShell runs in it.

function New-AcceptAnyCertificateCallback {
    # Accepts the handshake whatever the chain (a self-signed or an internal CA's certificate): what matters here is
    # that the certificate served is the one bound, which the caller checks by thumbprint.
    $parameters = [Type[]]@(
        [object],
        [System.Security.Cryptography.X509Certificates.X509Certificate],
        [System.Security.Cryptography.X509Certificates.X509Chain],
        [System.Net.Security.SslPolicyErrors])
    $method = New-Object System.Reflection.Emit.DynamicMethod('UsercubeAcceptAnyCertificate', [bool], $parameters)
    $il = $method.GetILGenerator()
    $il.Emit([System.Reflection.Emit.OpCodes]::Ldc_I4_1)
    $il.Emit([System.Reflection.Emit.OpCodes]::Ret)
    return $method.CreateDelegate([System.Net.Security.RemoteCertificateValidationCallback])
}

{% include '_errors.ps1' %}

function Read-ChunkedBody([byte[]] $Bytes, [int] $Start) {
    # Transfer-Encoding: chunked (RFC 9112, section 7.1): <hex size>[;ext]CRLF <data> CRLF ... 0 CRLF CRLF.
    $body = New-Object System.IO.MemoryStream
    $position = $Start
    while ($position -lt $Bytes.Length) {
        $end = $position
        while ($end + 1 -lt $Bytes.Length -and -not ($Bytes[$end] -eq 13 -and $Bytes[$end + 1] -eq 10)) { $end++ }
        $line = [System.Text.Encoding]::ASCII.GetString($Bytes, $position, $end - $position)
        $size = [Convert]::ToInt32(($line.Split(';')[0]).Trim(), 16)
        if ($size -le 0) { break }
        $take = [Math]::Min($size, $Bytes.Length - ($end + 2))
        $body.Write($Bytes, $end + 2, $take)
        $position = $end + 2 + $size + 2
    }
    return , $body.ToArray()
}

function Invoke-HttpsProbe([string] $Address, [int] $Port, [string] $HostName, [string] $Path, [int] $TimeoutMs) {
    # outcome: refused, timeout, tls_failed, no_response or http (then status, headers, body and the certificate).
    $answer = [ordered]@{ outcome = $null; message = ''; certificate = $null; certificate_subject = $null; status = $null; server = $null; body = '' }
    # TcpClient() is an IPv4 socket on .NET Framework: an IPv6 binding's address needs the family given
    # (dotnet/dotnet-api-docs#792: "This constructor works only with IPv4 address types").
    $ip = $null
    if ([System.Net.IPAddress]::TryParse($Address, [ref]$ip)) {
        $client = New-Object System.Net.Sockets.TcpClient($ip.AddressFamily)
    } else {
        $client = New-Object System.Net.Sockets.TcpClient
    }
    try {
        # Given as an IPAddress, BeginConnect skips the name lookup, so an immediate connect error (10049, 10051)
        # comes from EndConnect below instead of BeginConnect itself (referencesource Socket.BeginConnect).
        if ($null -ne $ip) { $target = $ip } else { $target = $Address }
        try {
            $pending = $client.BeginConnect($target, $Port, $null, $null)
        } catch {
            $answer.outcome = 'refused'
            $answer.message = Get-InnermostMessage $_.Exception
            return $answer
        }
        if (-not $pending.AsyncWaitHandle.WaitOne($TimeoutMs)) {
            $answer.outcome = 'timeout'
            $answer.message = "no connection to ${Address}:$Port within $TimeoutMs ms"
            return $answer
        }
        try {
            $client.EndConnect($pending)
        } catch {
            $answer.outcome = 'refused'
            $answer.message = Get-InnermostMessage $_.Exception
            return $answer
        }
        $client.ReceiveTimeout = $TimeoutMs
        $client.SendTimeout = $TimeoutMs
        $ssl = New-Object System.Net.Security.SslStream($client.GetStream(), $false, (New-AcceptAnyCertificateCallback))
        try {
            $ssl.AuthenticateAsClient($HostName, $null, [System.Security.Authentication.SslProtocols]::Tls12, $false)
        } catch {
            $answer.outcome = 'tls_failed'
            $answer.message = Get-InnermostMessage $_.Exception
            return $answer
        }
        $served = New-Object System.Security.Cryptography.X509Certificates.X509Certificate2 $ssl.RemoteCertificate
        $answer.certificate = $served.Thumbprint.ToUpperInvariant()
        $answer.certificate_subject = $served.Subject
        $request = [System.Text.Encoding]::ASCII.GetBytes("GET $Path HTTP/1.1`r`nHost: $HostName`r`nUser-Agent: usercube-agents-verify`r`nAccept: */*`r`nConnection: close`r`n`r`n")
        $ssl.Write($request, 0, $request.Length)
        $ssl.Flush()
        $received = New-Object System.IO.MemoryStream
        $buffer = New-Object byte[] 65536
        try {
            # Connection: close, so the server ends the stream after the response; at most 1 MiB is kept.
            for ($read = $ssl.Read($buffer, 0, $buffer.Length); $read -gt 0 -and $received.Length -lt 1048576; $read = $ssl.Read($buffer, 0, $buffer.Length)) {
                $received.Write($buffer, 0, $read)
            }
        } catch {
            if ($received.Length -eq 0) {
                $answer.outcome = 'no_response'
                $answer.message = Get-InnermostMessage $_.Exception
                return $answer
            }
        }
        [byte[]] $bytes = $received.ToArray()
        $text = [System.Text.Encoding]::ASCII.GetString($bytes)
        $split = $text.IndexOf("`r`n`r`n")
        if ($split -lt 0 -or -not $text.StartsWith('HTTP/')) {
            $answer.outcome = 'no_response'
            $answer.message = "the server closed the connection without an HTTP response ($($bytes.Length) bytes)"
            return $answer
        }
        $lines = $text.Substring(0, $split).Split(@("`r`n"), [System.StringSplitOptions]::None)
        $answer.outcome = 'http'
        $answer.status = [int]($lines[0].Split(' ')[1])
        $chunked = $false
        for ($index = 1; $index -lt $lines.Length; $index++) {
            $colon = $lines[$index].IndexOf(':')
            if ($colon -lt 1) { continue }
            $name = $lines[$index].Substring(0, $colon).Trim()
            $value = $lines[$index].Substring($colon + 1).Trim()
            if ($name -eq 'Server') { $answer.server = $value }
            if ($name -eq 'Transfer-Encoding' -and $value -match 'chunked') { $chunked = $true }
        }
        $start = $split + 4
        if ($chunked) {
            [byte[]] $content = Read-ChunkedBody $bytes $start
        } else {
            [byte[]] $content = New-Object byte[] ([Math]::Max(0, $bytes.Length - $start))
            if ($content.Length -gt 0) { [Array]::Copy($bytes, $start, $content, 0, $content.Length) }
        }
        $answer.body = [System.Text.Encoding]::UTF8.GetString($content)
        return $answer
    } finally {
        $client.Close()
    }
}

function Get-AnswerProblem($Answer, $Spec) {
    # $null when the agent answered as it should; otherwise what was wrong with the answer.
    if ($Answer.outcome -eq 'refused') { return "the connection was refused: nothing listens on port $($Spec.port) ($($Answer.message))" }
    if ($Answer.outcome -eq 'timeout') { return $Answer.message }
    if ($Answer.outcome -eq 'tls_failed') { return "the TLS handshake for $($Spec.host_name) failed: no certificate was served ($($Answer.message))" }
    if ($Answer.outcome -eq 'no_response') { return "no HTTP response: $($Answer.message)" }
    $expected = ([string]$Spec.expected_thumbprint).ToUpperInvariant()
    if ($Answer.certificate -ne $expected) {
        return "it serves certificate $($Answer.certificate) ($($Answer.certificate_subject)), not $expected, the one the stack bound"
    }
    $page = [regex]::Match([string]$Answer.body, 'HTTP Error (\d{3}\.\d+)')
    $code = "HTTP $($Answer.status)"
    if ($page.Success) { $code = "HTTP $($page.Groups[1].Value)" }
    if ($Answer.server -match 'Microsoft-HTTPAPI') {
        # HTTP.sys's own answer (400 Invalid Hostname, 503 Service Unavailable): no worker process ran.
        return "HTTP.sys answered $code itself: the request reached no running site or pool"
    }
    if ([string]$Spec.expect_body -ne '') {
        if ($Answer.status -ne 200 -or ([string]$Answer.body).Trim() -ne [string]$Spec.expect_body) {
            $excerpt = ([string]$Answer.body).Trim()
            if ($excerpt.Length -gt 120) { $excerpt = $excerpt.Substring(0, 120) + '...' }
            return "$($Spec.path) answered $code '$excerpt', not 200 '$($Spec.expect_body)'"
        }
        return $null
    }
    # An IIS or ANCM error page (shown in detail to a request from the host itself: httpErrors errorMode
    # DetailedLocalOnly by default) is no answer of the agent, whatever its status code.
    if ($Answer.status -ge 500 -or $page.Success) { return "$($Spec.path) answered $code" }
    return $null
}
