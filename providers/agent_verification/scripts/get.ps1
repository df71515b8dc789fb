param([Parameter(Mandatory = $true)] [string] $InputJson)
{% include 'prelude.ps1' %}
{% include '_iis.ps1' %}
{% include '_probe.ps1' %}
{% include '_causes.ps1' %}

# The manual's "Verify Agent Installation" / "Test Your Installation", from the host itself: the agent's HTTPS
# endpoint with its host name (the server's /hc must answer Healthy) and the certificate bound; a Windows-service
# agent must be running. When the answer is wrong, the host's configuration says why; a state that may still
# settle (a pool starting, a site WAS has not picked up) is asked again until wait_seconds have passed.
# mode 'check' (create, update) fails with the causes; 'report' (refresh) only reports them.
$problem = $null
$causes = @()
$answer = $null
$deadline = (Get-Date).AddSeconds([int]$Spec.wait_seconds)
for ($attempt = 1; ; $attempt++) {
    if ([string]$Spec.hosting -eq 'iis') {
        $address = [string]$Spec.ip_address
        if ($address -eq '*') { $address = '127.0.0.1' }
        $address = $address.Trim('[', ']')
        $answer = Invoke-HttpsProbe $address ([int]$Spec.port) ([string]$Spec.host_name) ([string]$Spec.path) 10000
        $problem = Get-AnswerProblem $answer $Spec
        if ($null -ne $problem) { $causes = @(Get-IisCauses $Spec) + @(Get-RuntimeCauses $Spec) + @(Get-KeyCauses $Spec) }
    } else {
        $causes = @(Get-ServiceCauses $Spec) + @(Get-RuntimeCauses $Spec)
        $problem = $null
        if ($causes.Count -gt 0) { $problem = "the service '$($Spec.service_name)' is not running its agent" }
        else { $causes = @(Get-KeyCauses $Spec); if ($causes.Count -gt 0) { $problem = 'the agent cannot open its certificates' } }
    }
    if ($null -eq $problem -or $causes.Count -gt 0 -or (Get-Date) -ge $deadline) { break }
    Start-Sleep -Seconds 2
}
$state = [ordered]@{
    ensure = 'present'
    answers = ($null -eq $problem)
    url = [string]$Spec.url
    problem = $problem
    causes = @($causes)
    attempts = $attempt
    status = $null
    served_thumbprint = $null
}
if ($null -ne $answer) {
    $state.status = $answer.status
    $state.served_thumbprint = $answer.certificate
}
if ($null -ne $problem -and [string]$Spec.mode -eq 'check') {
    $why = 'no cause found in IIS''s configuration: see the Application event log (source IIS AspNetCore Module V2) and the stdout log in Temp'
    if ($causes.Count -gt 0) { $why = 'likely cause: ' + ($causes -join '; ') }
    Stop-Operation -Id 'AgentNotAnswering' -Category 'ConnectionError' -Message "$($Spec.url): $problem; $why"
}
Complete-Operation -State $state
