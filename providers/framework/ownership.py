"""The id a resource records on the host when it holds a shared object (providers/scripting/ps/_owners.ps1).

Ownership lives on the host, not only in the state: a reply lost after the host acted leaves the state
without what the operation did, and two stacks never see each other's state. The id must therefore be the
same at every run of the same resource (a retry, the next ``up``, ``destroy``) and differ between stacks and
between resources: organization, project and stack, then what makes the resource's URN unique (its parent's
type and name, its type and name).

Not the URN itself: its value is an output of the parent, and an input that depends on the parent makes the
SDK report a circular dependency (a component waits for its children).
"""

from __future__ import annotations

import pulumi


def owner_id(type_token: str, resource_name: str, opts: pulumi.ResourceOptions | None) -> str:
    """``<organization>/<project>/<stack>/[<parent type>$<parent name>/]<type>::<name>``, known in previews."""
    parts = [pulumi.get_organization(), pulumi.get_project(), pulumi.get_stack()]
    parent = opts.parent if opts is not None else None
    if parent is not None:
        # (The SDK keeps a resource's type and name in these attributes; it offers no public accessor.)
        parts.append(f"{getattr(parent, '_type', '')}${getattr(parent, '_name', '')}")
    parts.append(f"{type_token}::{resource_name}")
    return "/".join(parts)
