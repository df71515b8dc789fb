# Exception helpers shared by the operation scripts (one definition: a script that includes two helpers
# files gets one body, whichever came last, if each had its own).

# The innermost exception: the .NET one (e.g. the Win32Exception), not PowerShell's "Exception calling ..."
# MethodInvocationException around it.
function Get-InnermostException([System.Exception] $Exception) {
    $e = $Exception
    while ($null -ne $e.InnerException) { $e = $e.InnerException }
    return $e
}

# The innermost exception's message.
function Get-InnermostMessage([System.Exception] $Exception) {
    return [string](Get-InnermostException $Exception).Message
}
