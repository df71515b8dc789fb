"""Adopting an object that already exists on a host: by declaration, never by ``pulumi import``."""

from __future__ import annotations

import pulumi


def refuse_import(type_name: str, resource_name: str, opts: pulumi.ResourceOptions | None) -> None:
    """Refuse the ``import_`` resource option with what to do instead.

    The engine imports by calling the provider's Read with the object's id and no properties; a Python
    dynamic provider is itself one of those properties (``__provider``), so the SDK fails before any
    code of ours runs ("Exception calling application: '__provider'"), and there would be no WinRM
    connection to read the host with anyway. ``pulumi import`` takes the same path and cannot be caught
    here; the README says the same as this message.
    """
    if opts is None or not opts.import_:
        return
    raise ValueError(
        f"{type_name} '{resource_name}': the import_ option (and `pulumi import`) cannot adopt an existing "
        "object with this provider: a Pulumi dynamic provider gets no inputs, so no WinRM connection, when the "
        "engine imports. Remove import_ and declare the resource with the object's current settings: the "
        "first `up` adopts what is on the host and changes only what differs (run `preview --diff` first to "
        "see that)."
    )
