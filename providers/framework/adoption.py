"""Adopting an object that already exists on a host: by declaration, never by ``pulumi import``.

The one source of the explanation users get, whichever way they ask to import: the ``import_`` resource
option (refused in the program, ``refuse_import``) or the ``pulumi import`` command (refused by the provider
plugin, ``providers/dynamic_server.py``, with ``pulumi_import_refusal``).
"""

from __future__ import annotations

import pulumi


def _cannot_adopt(subject: str, how: str, first_step: str) -> str:
    return (
        f"{subject}: {how} cannot adopt an existing object with this provider: a Pulumi dynamic provider gets "
        "no inputs, so no WinRM connection, when the engine imports. "
        f"{first_step} declare the resource with the object's current settings: the first `up` adopts what is on "
        "the host and changes only what differs (run `preview --diff` first to see that)."
    )


def pulumi_import_refusal(type_name: str, resource_name: str, object_id: str) -> str:
    """What ``pulumi import`` of ``object_id`` as ``type_name`` '``resource_name``' answers, and what to do instead."""
    return _cannot_adopt(
        f"{type_name} '{resource_name}' (id '{object_id}')", "`pulumi import`", "Leave it out of the import and"
    )


def refuse_import(type_name: str, resource_name: str, opts: pulumi.ResourceOptions | None) -> None:
    """Refuse the ``import_`` resource option with what to do instead.

    The engine imports by calling the provider's Read with the object's id and no properties; a Python
    dynamic provider is itself one of those properties (``__provider``), so the SDK would fail before any
    code of ours runs ("Exception calling application: '__provider'"), and there would be no WinRM
    connection to read the host with anyway. ``pulumi import`` takes the same path without running the
    program; the provider plugin refuses it there (``providers/dynamic_server.py``).
    """
    if opts is None or not opts.import_:
        return
    raise ValueError(
        _cannot_adopt(
            f"{type_name} '{resource_name}'", "the import_ option (and `pulumi import`)", "Remove import_ and"
        )
    )
