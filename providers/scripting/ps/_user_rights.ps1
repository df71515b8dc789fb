# User rights (the local security policy's User Rights Assignment) through LSA, shared by the
# WindowsService ("Log on as a service") and IisAppPool ("Log on as a batch job") scripts.
#
# LsaAddAccountRights is what secpol.msc and ansible.windows win_user_right use; there is no in-box
# cmdlet. LsaEnumerateAccountRights returns the rights given to that SID itself, not those a group of
# the account holds (learn.microsoft.com, LsaEnumerateAccountRights). A right set by Group Policy
# replaces a local grant at the next policy refresh, so there the policy must name the account.
# One definition for every script: the type is compiled once per powershell.exe (the operation loop
# is long-lived), so two different sources under one type name would leave the second one's methods
# missing.
{% include '_errors.ps1' %}

$AccountRightsSource = @'
using System;
using System.Runtime.InteropServices;
using System.Security.Principal;
namespace UsercubeIac {
    public static class AccountRights {
        [StructLayout(LayoutKind.Sequential)]
        struct LsaString { public ushort Length; public ushort MaximumLength; public IntPtr Buffer; }
        [StructLayout(LayoutKind.Sequential)]
        struct LsaAttributes { public int Length; public IntPtr RootDirectory; public IntPtr ObjectName; public int Attributes; public IntPtr SecurityDescriptor; public IntPtr SecurityQualityOfService; }
        [DllImport("advapi32.dll")] static extern uint LsaOpenPolicy(IntPtr system, ref LsaAttributes attributes, int access, out IntPtr policy);
        [DllImport("advapi32.dll")] static extern uint LsaEnumerateAccountRights(IntPtr policy, byte[] sid, out IntPtr rights, out uint count);
        [DllImport("advapi32.dll")] static extern uint LsaAddAccountRights(IntPtr policy, byte[] sid, LsaString[] rights, uint count);
        [DllImport("advapi32.dll")] static extern uint LsaFreeMemory(IntPtr buffer);
        [DllImport("advapi32.dll")] static extern uint LsaClose(IntPtr policy);
        [DllImport("advapi32.dll")] static extern int LsaNtStatusToWinError(uint status);
        const int PolicyLookupNames = 0x800, PolicyCreateAccount = 0x10;
        const uint StatusObjectNameNotFound = 0xC0000034;

        static void Check(uint status) {
            if (status != 0) { throw new System.ComponentModel.Win32Exception(LsaNtStatusToWinError(status)); }
        }

        static byte[] SidBytes(string sidText) {
            SecurityIdentifier sid = new SecurityIdentifier(sidText);
            byte[] bytes = new byte[sid.BinaryLength];
            sid.GetBinaryForm(bytes, 0);
            return bytes;
        }

        static IntPtr Open(int access) {
            LsaAttributes attributes = new LsaAttributes();
            IntPtr policy;
            Check(LsaOpenPolicy(IntPtr.Zero, ref attributes, access, out policy));
            return policy;
        }

        static bool HeldBy(IntPtr policy, byte[] sidBytes, string right) {
            IntPtr held; uint count;
            uint status = LsaEnumerateAccountRights(policy, sidBytes, out held, out count);
            // An account LSA has no entry for holds no right at all.
            if (status == StatusObjectNameNotFound) { return false; }
            Check(status);
            try {
                int size = Marshal.SizeOf(typeof(LsaString));
                for (int i = 0; i < count; i++) {
                    LsaString item = (LsaString)Marshal.PtrToStructure(new IntPtr(held.ToInt64() + i * size), typeof(LsaString));
                    if (Marshal.PtrToStringUni(item.Buffer, item.Length / 2) == right) { return true; }
                }
                return false;
            } finally { LsaFreeMemory(held); }
        }

        // Whether the SID itself holds the right (not through a group).
        public static bool Holds(string sidText, string right) {
            IntPtr policy = Open(PolicyLookupNames);
            try { return HeldBy(policy, SidBytes(sidText), right); } finally { LsaClose(policy); }
        }

        // True when the right was added, false when the account already held it.
        public static bool Grant(string sidText, string right) {
            byte[] sidBytes = SidBytes(sidText);
            IntPtr policy = Open(PolicyLookupNames | PolicyCreateAccount);
            try {
                if (HeldBy(policy, sidBytes, right)) { return false; }
                IntPtr text = Marshal.StringToHGlobalUni(right);
                try {
                    LsaString[] wanted = new LsaString[1];
                    wanted[0].Buffer = text;
                    wanted[0].Length = (ushort)(right.Length * 2);
                    wanted[0].MaximumLength = (ushort)(right.Length * 2 + 2);
                    Check(LsaAddAccountRights(policy, sidBytes, wanted, 1));
                } finally { Marshal.FreeHGlobal(text); }
                return true;
            } finally { LsaClose(policy); }
        }
    }
}
'@

# The operation loop runs requests at the same time in one process (loop.ps1's RunspacePool): two of them can
# both find the type missing and both compile it; the second Add-Type then fails because the first one's
# type now exists. Losing that race is fine: the type is there, which is what is checked again (the type
# itself, not the error's text).
function Import-AccountRights {
    if ('UsercubeIac.AccountRights' -as [type]) { return }
    try {
        Add-Type -TypeDefinition $AccountRightsSource
    } catch {
        if (-not ('UsercubeIac.AccountRights' -as [type])) { throw }
    }
}

# Whether the SID itself holds the right; throws (a MethodInvocationException around the Win32Exception) when LSA refuses.
function Test-AccountRight([string] $Sid, [string] $Right) {
    Import-AccountRights
    return [UsercubeIac.AccountRights]::Holds($Sid, $Right)
}

# LsaAddAccountRights: $true when added, $false when the SID already held it; throws when LSA refuses.
function Grant-AccountRight([string] $Sid, [string] $Right) {
    Import-AccountRights
    return [UsercubeIac.AccountRights]::Grant($Sid, $Right)
}

# LSA's refusal as the operator can look it up on a host in any language: the Win32 text (localized), then
# its code (LsaNtStatusToWinError's, which Win32Exception keeps as NativeErrorCode).
function Get-LsaErrorText([System.Exception] $Exception) {
    $inner = Get-InnermostException $Exception
    if ($inner -is [System.ComponentModel.Win32Exception]) { return "$($inner.Message) (Win32 $($inner.NativeErrorCode))" }
    return [string]$inner.Message
}
