"""The Pulumi resource class users write in their programs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
from pulumi.dynamic import Resource

from providers.file_acl.provider import FileAclProvider
from providers.framework.adoption import refuse_import


class FileAcl(Resource, module="windows", name="FileAcl"):
    """One account's explicit access entry (allow or deny) on a folder or file.

    Only that account's explicit entries of that type are managed: other accounts' entries and all
    inherited entries stay as they are. ``rights`` are compared as an access mask, ``principal`` by SID.
    """

    path: pulumi.Output[str]
    principal: pulumi.Output[str]
    rights: pulumi.Output[list[str]]
    principal_sid: pulumi.Output[str]
    principal_name: pulumi.Output[str]
    access_mask: pulumi.Output[int]

    def __init__(
        self,
        resource_name: str,
        *,
        connection: pulumi.Input[dict[str, Any]],
        path: pulumi.Input[str],
        principal: pulumi.Input[str],
        rights: pulumi.Input[Sequence[str]],
        access: pulumi.Input[str] = "Allow",
        inheritance: pulumi.Input[Sequence[str]] | None = None,
        propagation: pulumi.Input[Sequence[str]] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``inheritance=None``: both ContainerInherit and ObjectInherit on a folder, none on a file."""
        props: dict[str, Any] = {
            "connection": connection,
            "path": path,
            "principal": principal,
            "rights": rights,
            "access": access,
            "inheritance": inheritance,
            "propagation": propagation if propagation is not None else [],
            "principal_sid": None,
            "principal_name": None,
            "access_mask": None,
        }
        refuse_import("FileAcl", resource_name, opts)
        super().__init__(FileAclProvider(), resource_name, props, opts)
