"""The Pulumi resource class users write in their programs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
from pulumi.dynamic import Resource

from providers.certificate.model import CertificateModel
from providers.certificate.provider import CertificateProvider
from providers.framework.adoption import refuse_import
from providers.framework.ownership import owner_id


class Certificate(Resource, module="windows", name="Certificate"):
    """A certificate and its private key, imported from a PFX into ``Cert:\\LocalMachine\\<store_name>``.

    ``thumbprint`` is computed from the PFX before the import; reference it from IIS bindings and
    settings so that a new PFX moves them to the new certificate in the same ``up``. Each resource holds a
    share, recorded on the host: destroy removes its share and its readers, and the certificate only with
    the last owner, if it was not in the store before and no HTTP.sys binding presents it.
    """

    thumbprint: pulumi.Output[str]
    subject: pulumi.Output[str]
    not_after: pulumi.Output[str]
    has_private_key: pulumi.Output[bool]
    key_storage: pulumi.Output[str]
    imported: pulumi.Output[bool]

    def __init__(
        self,
        resource_name: str,
        *,
        connection: pulumi.Input[dict[str, Any]],
        pfx: pulumi.Input[str],
        pfx_password: pulumi.Input[str],
        store_location: pulumi.Input[str] = "LocalMachine",
        store_name: pulumi.Input[str] = "My",
        exportable: pulumi.Input[bool] = False,
        private_key_readers: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``pfx``: the .pfx file's bytes, base64-encoded. Both it and ``pfx_password`` are always secrets."""
        secrets = CertificateModel.secret_keys()
        props: dict[str, Any] = {
            "connection": connection,
            "pfx": pulumi.Output.secret(pfx),
            "pfx_password": pulumi.Output.secret(pfx_password),
            "store_location": store_location,
            "store_name": store_name,
            "exportable": exportable,
            "private_key_readers": private_key_readers if private_key_readers is not None else [],
            "owner": owner_id("windows:Certificate", resource_name, opts),
            "thumbprint": None,
            "subject": None,
            "not_after": None,
            "has_private_key": None,
            "key_storage": None,
            "imported": None,
        }
        secret_opts = pulumi.ResourceOptions(additional_secret_outputs=sorted(secrets))
        refuse_import("Certificate", resource_name, opts)
        super().__init__(CertificateProvider(), resource_name, props, pulumi.ResourceOptions.merge(opts, secret_opts))
