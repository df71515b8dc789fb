"""The Pulumi resource class users write in their programs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
from pulumi.dynamic import Resource

from providers.directory.provider import DirectoryProvider
from providers.framework.adoption import refuse_import


class Directory(Resource, module="windows", name="Directory"):
    """A folder and its named sub-folders, created when missing.

    Destroy removes only the folders this resource created, and only while they are empty, unless
    ``delete_contents=True``. ``folder_paths`` maps each sub-folder name to its full path.
    """

    path: pulumi.Output[str]
    folder_paths: pulumi.Output[dict[str, str]]
    created_folders: pulumi.Output[list[str]]

    def __init__(
        self,
        resource_name: str,
        *,
        connection: pulumi.Input[dict[str, Any]],
        path: pulumi.Input[str],
        subfolders: pulumi.Input[Sequence[str]] | None = None,
        delete_contents: pulumi.Input[bool] = False,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "connection": connection,
            "path": path,
            "subfolders": subfolders if subfolders is not None else [],
            "delete_contents": delete_contents,
            "folder_paths": None,
            "created_folders": None,
        }
        refuse_import("Directory", resource_name, opts)
        super().__init__(DirectoryProvider(), resource_name, props, opts)
