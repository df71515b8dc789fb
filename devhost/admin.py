"""SIMULATOR: out-of-band changes, as an administrator makes them by hand on a real server.

`python -m devhost admin <command> --state DIR ...`; each command edits the simulated host's
state files directly (no WinRM), exactly what `refresh` must then find.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from devhost import accounts
from devhost.fs import WindowsFs

Handler = Callable[[argparse.Namespace], int]


def _file_write(args: argparse.Namespace) -> int:
    target = WindowsFs(args.state).resolve(args.path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = sys.stdin.read() if args.text is None else args.text
    target.write_bytes(text.encode("utf-8"))
    print(f"devhost (simulator): wrote {args.path}")
    return 0


def _file_reencode(args: argparse.Namespace) -> int:
    """Notepad's "Save As" with another encoding: the same text, other bytes (the file keeps its ACL)."""
    from devhost.ops import settings_file

    target = WindowsFs(args.state).resolve(args.path)
    if not target.is_file():
        print(f"devhost (simulator): {args.path} is not a file", file=sys.stderr)
        return 1
    data = target.read_bytes()
    text = settings_file._decode(data, settings_file._encoding_of(data))
    target.write_bytes(settings_file._encode(text, args.encoding))
    print(f"devhost (simulator): {args.path} saved as {args.encoding}")
    return 0


def _dir_delete(args: argparse.Namespace) -> int:
    """`rd` of an empty folder (Windows refuses a folder that holds anything: ERROR_DIR_NOT_EMPTY)."""
    from devhost import ntfs

    target = WindowsFs(args.state).resolve(args.path)
    if not target.is_dir():
        print(f"devhost (simulator): {args.path} is not a folder", file=sys.stderr)
        return 1
    if any(target.iterdir()):
        print(f"devhost (simulator): {args.path}: The directory is not empty.", file=sys.stderr)
        return 1
    target.rmdir()
    ntfs.NtfsStore(args.state).forget(args.path)
    print(f"devhost (simulator): removed folder {args.path}")
    return 0


def _file_delete(args: argparse.Namespace) -> int:
    from devhost import ntfs

    target = WindowsFs(args.state).resolve(args.path)
    if not target.is_file():
        print(f"devhost (simulator): {args.path} is not a file", file=sys.stderr)
        return 1
    target.unlink()
    ntfs.NtfsStore(args.state).forget(args.path)  # its security descriptor goes with it
    print(f"devhost (simulator): deleted {args.path}")
    return 0


def _file_show(args: argparse.Namespace) -> int:
    target = WindowsFs(args.state).resolve(args.path)
    if not target.is_file():
        print(f"devhost (simulator): {args.path} is not a file", file=sys.stderr)
        return 1
    sys.stdout.write(target.read_text(encoding="utf-8", errors="replace"))
    return 0


def _file_read_as(args: argparse.Namespace) -> int:
    from devhost import iis, scm
    from devhost.ops.file_acl import admin_read_as

    del iis, scm  # registers the IIS APPPOOL and NT SERVICE virtual accounts (see _cert_key_access)
    sys.stdout.write(admin_read_as(args.state, args.path, args.principal).decode("utf-8", errors="replace"))
    return 0


def _acl_inheritance(args: argparse.Namespace) -> int:
    from devhost.ops.file_acl import admin_set_inheritance

    print(json.dumps(admin_set_inheritance(args.state, args.path, args.mode)))
    return 0


def _acl_owner(args: argparse.Namespace) -> int:
    from devhost.ops.file_acl import admin_set_owner

    print(json.dumps(admin_set_owner(args.state, args.path, args.principal)))
    return 0


def _add_account(args: argparse.Namespace) -> int:
    password = sys.stdin.readline().rstrip("\r\n") if args.password_stdin else None
    account = accounts.add_account(args.state, args.name, args.kind, password)
    print(f"devhost (simulator): account {account.name} ({account.kind}) = {account.sid}")
    return 0


def _acl_edit(args: argparse.Namespace) -> int:
    from devhost.ops.file_acl import admin_edit_entry

    rights: str | int = int(args.rights, 0) if args.rights.lower().startswith("0x") else args.rights
    entries = admin_edit_entry(
        args.state,
        args.path,
        args.principal,
        rights,
        deny=args.deny,
        inheritance=args.inheritance or (),
        remove=args.remove,
    )
    for entry in entries:
        print(json.dumps(entry))
    return 0


def _user_right(args: argparse.Namespace) -> int:
    from devhost import lsa

    sid = accounts.resolve(args.state, args.account).sid
    if args.revoke:
        lsa.admin_revoke_right(args.state, sid, args.right)  # what a Group Policy that leaves the account out does
    else:
        lsa.grant_right(args.state, sid, args.right)
    print(f"devhost (simulator): {args.right} {'revoked from' if args.revoke else 'granted to'} {args.account} ({sid})")
    return 0


def _service_edit(args: argparse.Namespace) -> int:
    from devhost import scm

    values = {
        k: v
        for k, v in (
            ("display_name", args.display_name),
            ("start_mode", args.start_mode),
            ("start_name", args.start_name),
            ("description", args.description),
            ("image_path", args.image_path),
        )
        if v is not None
    }
    scm.admin_edit_service(args.state, args.name, **values)
    print(f"devhost (simulator): service {args.name} changed: {sorted(values)}")
    return 0


def _service_stop(args: argparse.Namespace) -> int:
    from devhost import scm

    scm.admin_stop_service(args.state, args.name)
    print(f"devhost (simulator): service {args.name} stopped")
    return 0


def _service_delete(args: argparse.Namespace) -> int:
    from devhost import scm

    scm.admin_delete_service(args.state, args.name)
    print(f"devhost (simulator): service {args.name} deleted")
    return 0


def _feature_remove(args: argparse.Namespace) -> int:
    from devhost import features

    features.admin_remove_feature(args.state, args.name)
    print(f"devhost (simulator): feature {args.name} removed")
    return 0


def _restart(args: argparse.Namespace) -> int:
    from devhost import power

    power.admin_restart(args.state)  # a new boot time; the renames and feature changes waiting for it done
    print("devhost (simulator): restarted (pending restart cleared)")
    return 0


def _feature_install(args: argparse.Namespace) -> int:
    from devhost import features

    result = features.install(args.state, args.name)
    print(f"devhost (simulator): installed {result.features or 'nothing new'}")
    return 0


def _hosting_bundle(args: argparse.Namespace) -> int:
    from devhost import iis

    iis.install_hosting_bundle(args.state, args.version)
    module = "with" if iis.is_installed(args.state) else "WITHOUT (IIS is not installed yet)"
    print(f"devhost (simulator): .NET hosting bundle {args.version} installed {module} AspNetCoreModuleV2")
    return 0


def _runtime_stand_in(args: argparse.Namespace) -> int:
    from devhost import https

    https.write_stand_in_runtime(args.state, args.runtime, args.app)
    print(f"devhost (simulator): stand-in {args.app} written to {args.runtime}")
    return 0


def _iis_pool_set(args: argparse.Namespace) -> int:
    from devhost import iis

    iis.admin_set_pool_attribute(args.state, args.pool, args.attribute, args.value)
    print(f"devhost (simulator): pool {args.pool}: {args.attribute} = {args.value}")
    return 0


def _iis_site_set(args: argparse.Namespace) -> int:
    """IIS Manager's Basic/Advanced Settings of a site: an attribute of its root application
    (``application/preloadEnabled``, ``application/applicationPool``) or root virtual directory
    (``virtualDirectory/physicalPath``)."""
    from devhost import iis

    manager = iis.ServerManager(args.state)
    site = manager.find_site(args.site)
    if site is None:
        print(f"devhost (simulator): no site '{args.site}'", file=sys.stderr)
        return 1
    element, _, attribute = args.attribute.partition("/")
    if element not in ("application", "virtualDirectory") or not attribute:
        print("devhost (simulator): --attribute is application/<name> or virtualDirectory/<name>", file=sys.stderr)
        return 2
    target = manager.root_application(site) if element == "application" else manager.root_directory(site)
    target.set(attribute, args.value)
    manager.commit()
    print(f"devhost (simulator): site {args.site}: {args.attribute} = {args.value}")
    return 0


def _iis_state(args: argparse.Namespace) -> int:
    from devhost import iis

    iis.admin_set_state(args.state, args.kind, args.name, args.to)
    print(f"devhost (simulator): {args.kind} {args.name} {args.to}")
    return 0


def _iis_add_binding(args: argparse.Namespace) -> int:
    from devhost import iis

    iis.admin_add_binding(args.state, args.site, args.protocol, args.information)
    print(f"devhost (simulator): site {args.site}: binding {args.protocol} {args.information} added")
    return 0


def _iis_remove_binding(args: argparse.Namespace) -> int:
    from devhost import iis

    iis.admin_remove_binding(args.state, args.site, args.protocol, args.information)
    print(f"devhost (simulator): site {args.site}: binding {args.protocol} {args.information} removed")
    return 0


def _sslcert_delete(args: argparse.Namespace) -> int:
    from devhost import iis

    found = iis.admin_delete_sslcert(args.state, args.endpoint)
    print(f"devhost (simulator): HTTP.sys certificate binding {args.endpoint} {'deleted' if found else 'not found'}")
    return 0 if found else 1


def _cert_remove(args: argparse.Namespace) -> int:
    from devhost import certstore

    removed = certstore.admin_remove(args.state, args.thumbprint, store=args.store)
    print(f"devhost (simulator): certificate {args.thumbprint} {'removed' if removed else 'not found'}")
    return 0 if removed else 1


def _cert_key_access(args: argparse.Namespace) -> int:
    from devhost import certstore, iis, scm

    # Importing iis and scm registers the IIS APPPOOL and NT SERVICE virtual accounts, so a pool's
    # or a service's identity resolves here as it does on Windows.
    del iis, scm

    if args.revoke:
        certstore.admin_revoke_key_access(args.state, args.thumbprint, args.principal, store=args.store)
    else:
        certstore.admin_grant_key_read(args.state, args.thumbprint, args.principal, store=args.store)
    print(f"devhost (simulator): private key of {args.thumbprint}: {'revoked' if args.revoke else 'read granted'}")
    return 0


def _journal(args: argparse.Namespace) -> int:
    path = args.state / "_sim" / "journal.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    for line in lines[-args.tail :]:
        entry = json.loads(line)
        if entry.get("kind") in ("command", "signal", "create", "delete", "fault"):
            print(entry.get("time", ""), entry["kind"], entry.get("command_line", "")[:160])
    return 0


def _reporting(handler: Handler) -> Handler:
    """Errors of an admin edit are the administrator's to read, not a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except Exception as error:  # noqa: BLE001 - every model error (ScmError, IdentityNotMapped...) is the message
            print(f"devhost (simulator): {error}", file=sys.stderr)
            return 1

    return run


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> dict[str, Handler]:
    """Add the admin commands to the CLI; returns the handler of each."""
    admin = sub.add_parser("admin", help="change the simulated host out of band, as an administrator would")
    commands = admin.add_subparsers(dest="admin_cmd", required=True)
    handlers: dict[str, Handler] = {}

    def command(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=help_text)
        parser.add_argument("--state", type=Path, required=True, help="the simulated host's state directory")
        handlers[name] = _reporting(handler)
        return parser

    write = command("file-write", _file_write, "replace a file's content (text from --text or stdin)")
    write.add_argument("--path", required=True, help="Windows path, e.g. C:\\identitymanagerContoso\\Runtime\\x.json")
    write.add_argument("--text", default=None)
    command("file-delete", _file_delete, "delete a file").add_argument("--path", required=True)
    reencode = command("file-reencode", _file_reencode, "save a text file again in another encoding")
    reencode.add_argument("--path", required=True)
    reencode.add_argument("--encoding", choices=["utf-8", "utf-8-bom", "utf-16"], required=True)
    command("dir-delete", _dir_delete, "remove an empty folder (rd)").add_argument("--path", required=True)
    command("file-show", _file_show, "print a file").add_argument("--path", required=True)
    read_as = command("file-read-as", _file_read_as, "print a file as an account reads it (or: access denied)")
    read_as.add_argument("--path", required=True)
    read_as.add_argument("--principal", required=True, help="e.g. 'IIS APPPOOL\\<pool>' or SERVER\\alice")
    account = command("add-account", _add_account, "create a domain account, gMSA or group")
    account.add_argument("--name", required=True, help="DOMAIN\\name (a gMSA ends with $)")
    account.add_argument("--kind", choices=["user", "gmsa", "group"], default="user")
    account.add_argument("--password-stdin", action="store_true")
    acl = command("acl-edit", _acl_edit, "add (icacls /grant style) or remove a principal's explicit entry")
    acl.add_argument("--path", required=True)
    acl.add_argument("--principal", required=True, help="account name or SID")
    acl.add_argument("--rights", default="M", help="F, M, RX, R, W or a mask like 0x1301bf")
    acl.add_argument("--deny", action="store_true")
    acl.add_argument("--inheritance", nargs="*", choices=["ContainerInherit", "ObjectInherit"])
    acl.add_argument("--remove", action="store_true", help="remove the principal's explicit entries instead")
    inheritance = command("acl-inheritance", _acl_inheritance, "icacls /inheritance:e|d|r on a file or folder")
    inheritance.add_argument("--path", required=True)
    inheritance.add_argument("--mode", choices=["e", "d", "r"], required=True)
    owner = command("acl-owner", _acl_owner, "icacls /setowner: give a file or folder another owner")
    owner.add_argument("--path", required=True)
    owner.add_argument("--principal", required=True, help="account name or SID")
    right = command(
        "user-right", _user_right, "grant or revoke a User Rights Assignment entry (secpol.msc, a Group Policy refresh)"
    )
    right.add_argument("--right", required=True, help="e.g. SeBatchLogonRight, SeServiceLogonRight")
    right.add_argument("--account", required=True, help="account or group, e.g. IIS_IUSRS or CONTOSO\\svc-im")
    right.add_argument("--revoke", action="store_true")
    edit = command("service-edit", _service_edit, "change a service's configuration (as services.msc would)")
    edit.add_argument("--name", required=True)
    for option in ("--display-name", "--start-mode", "--start-name", "--description", "--image-path"):
        edit.add_argument(option, default=None)
    command("service-stop", _service_stop, "stop a service").add_argument("--name", required=True)
    command("service-delete", _service_delete, "delete a service (sc.exe delete)").add_argument("--name", required=True)
    command("feature-remove", _feature_remove, "uninstall a Windows feature").add_argument("--name", required=True)
    install = command("feature-install", _feature_install, "Install-WindowsFeature (e.g. Web-Server)")
    install.add_argument("--name", nargs="+", required=True)
    bundle = command("install-hosting-bundle", _hosting_bundle, "run the .NET Hosting Bundle installer")
    bundle.add_argument("--version", required=True, help="e.g. 8.0.11")
    stand_in = command("runtime-stand-in", _runtime_stand_in, "write the stand-in of an extracted agent runtime")
    stand_in.add_argument(
        "--runtime", required=True, help="the Runtime folder, e.g. C:\\identitymanagerContoso\\Runtime"
    )
    stand_in.add_argument(
        "--app", required=True, help="identitymanager-Agent.dll, identitymanager-Server.dll or Usercube-Agent.exe"
    )
    pool = command("iis-pool-set", _iis_pool_set, "change an application pool attribute (as IIS Manager would)")
    pool.add_argument("--pool", required=True)
    pool.add_argument("--attribute", required=True, help="e.g. processModel/idleTimeout")
    pool.add_argument("--value", required=True, help="e.g. 00:20:00")
    site_set = command("iis-site-set", _iis_site_set, "change a site's root application or directory attribute")
    site_set.add_argument("--site", required=True)
    site_set.add_argument("--attribute", required=True, help="e.g. application/preloadEnabled")
    site_set.add_argument("--value", required=True)
    state = command("iis-state", _iis_state, "start or stop a pool or site")
    state.add_argument("--kind", choices=["pool", "site"], required=True)
    state.add_argument("--name", required=True)
    state.add_argument("--to", choices=["Started", "Stopped"], required=True)
    binding = command("iis-add-binding", _iis_add_binding, "add a binding to a site")
    binding.add_argument("--site", required=True)
    binding.add_argument("--protocol", choices=["http", "https"], default="http")
    binding.add_argument("--information", required=True, help="bindingInformation, e.g. *:8080:")
    unbind = command("iis-remove-binding", _iis_remove_binding, "remove a site's binding (configuration only)")
    unbind.add_argument("--site", required=True)
    unbind.add_argument("--protocol", choices=["http", "https"], default="https")
    unbind.add_argument("--information", required=True, help="bindingInformation, e.g. *:443:agent.contoso.com")
    sslcert = command("sslcert-delete", _sslcert_delete, "netsh http delete sslcert (an HTTP.sys certificate binding)")
    sslcert.add_argument("--endpoint", required=True, help="hostname:port (SNI) or ip:port, e.g. agent.contoso.com:443")
    cert = command("cert-remove", _cert_remove, "delete a certificate and its key from LocalMachine")
    cert.add_argument("--thumbprint", required=True)
    cert.add_argument("--store", default="My")
    key = command("cert-key-access", _cert_key_access, "grant read on (or revoke) a certificate's private key")
    key.add_argument("--thumbprint", required=True)
    key.add_argument("--principal", required=True)
    key.add_argument("--store", default="My")
    key.add_argument("--revoke", action="store_true")
    command("restart", _restart, "restart the simulated machine (clears a pending restart)")
    command("journal", _journal, "print the commands the host received").add_argument("--tail", type=int, default=50)
    return handlers
