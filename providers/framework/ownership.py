"""The id a resource records on the host when it holds a shared object (providers/scripting/ps/_owners.ps1).

Ownership lives on the host, not only in the state: a reply lost after the host acted leaves the state
without what the operation did, and two stacks never see each other's state. The id must therefore be the
same at every run of the same resource (a retry, the next ``up``, ``destroy``) and differ between stacks and
between resources: the organization, then the resource's URN (which holds the stack, the project, its parents'
types and its name).
"""

from __future__ import annotations

import pulumi
from pulumi.resource import create_urn


def owner_id(type_token: str, resource_name: str, opts: pulumi.ResourceOptions | None) -> pulumi.Output[str]:
    """``<organization>/<urn>`` of the resource being declared (known in previews too)."""
    parent = opts.parent if opts is not None else None
    organization = pulumi.get_organization()
    return create_urn(resource_name, type_token, parent=parent).apply(lambda urn: f"{organization}/{urn}")
