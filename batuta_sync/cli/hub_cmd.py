"""CLI: ``batuta hub serve`` — run the local Hugging Face Hub-compatible server.

Module level imports stdlib + light batuta modules only; the server is imported in the handler.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batuta_sync.cli import _common
from batuta_sync.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from batuta_sync.server import HubServer, UserSpec
    from batuta_sync.server.mirror import MirrorConfig

ADMIN_TOKEN_ENV = "BATUTA_HUB_ADMIN_TOKEN"


def register(root: Any, hf: Any) -> None:
    """Add ``hub serve`` to the root parser."""
    hub_p = root.add_parser(
        "hub", help="Run a local Hugging Face Hub-compatible server (offline, air-gapped, CI)."
    )
    hub_sub = hub_p.add_subparsers(dest="hub_command", metavar="HUB_COMMAND", parser_class=type(hub_p))
    hub_p.set_defaults(_parser=hub_p)
    p = _common.command_parser(
        hub_sub,
        "serve",
        help="Serve a local Hub from a directory until Ctrl-C.",
        description=(
            "Serve a Hugging Face Hub-compatible API (models, datasets, spaces; upload, LFS, download, search) "
            "from --root. With no users the server is open: every request acts as user 'local' with write "
            "access (allowed on a loopback address only, unless --insecure-open-write). Give users with "
            "--users-file or --config (tokens never on the command line). Point clients at it with "
            "HF_ENDPOINT; the server speaks Xet and classic LFS, so the default huggingface_hub install "
            "uploads and downloads unchanged (no HF_HUB_DISABLE_XET needed)."
        ),
    )
    p.add_argument(
        "--root", required=True, type=Path, help="Directory holding the repositories (created if missing)."
    )
    p.add_argument("--host", default=None, help="Address to bind (default 127.0.0.1).")
    p.add_argument("--port", type=int, default=None, help="Port (default 0 = pick a free one).")
    p.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="NAME:TOKEN[:read|write]",
        help="A user and their bearer token (repeatable; role defaults to write). Deprecated: the token is "
        "visible in the process list; use --users-file.",
    )
    p.add_argument(
        "--users-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="Users, one 'NAME:TOKEN[:read|write]' per line ('#' comments, blank lines ignored).",
    )
    p.add_argument(
        "--admin-token-file",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"File holding the control API's admin token (or set {ADMIN_TOKEN_ENV}); needed with "
        "--control-api when users are configured.",
    )
    p.add_argument(
        "--org",
        action="append",
        default=[],
        metavar="ORG:MEMBER,...",
        help="An organisation and its member user names (repeatable).",
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="YAML/JSON file with host, port, users [{name, token|token_env, role}] and orgs {org: [members]}.",
    )
    p.add_argument(
        "--no-lfs-redirect",
        action="store_true",
        help="Serve LFS files directly from /resolve instead of redirecting to the blob URL.",
    )
    p.add_argument(
        "--control-api",
        action="store_true",
        help="Serve the /_batuta/ control endpoints (fault injection, request log, counters); off by "
        "default. With users configured they need the admin token (--admin-token-file).",
    )
    p.add_argument(
        "--no-control-api",
        action="store_true",
        help="Keep the control API off (the default now; wins over --control-api).",
    )
    p.add_argument(
        "--public-url",
        default=None,
        metavar="URL",
        help="Base of the absolute URLs the server hands out (LFS upload/download links, pagination), "
        "e.g. behind a proxy. Default: the request's Host header when well-formed, else the bound address.",
    )
    p.add_argument(
        "--insecure-open-write",
        action="store_true",
        help="Allow open mode (no users: everyone has write access) on a non-loopback address.",
    )
    p.add_argument(
        "--fault-rate",
        type=float,
        default=0.0,
        metavar="R",
        help="Chaos mode: about R (0..1) of the requests get a random fault (dropped or truncated or "
        "corrupted file bodies, 429, 5xx). Default 0 = none.",
    )
    p.add_argument(
        "--fault-seed", type=int, default=0, metavar="N", help="Seed of the random faults (default 0)."
    )
    m = p.add_argument_group("pull-through mirror (see docs/hub-server.md)")
    m.add_argument(
        "--upstream",
        default=None,
        metavar="URL",
        help="Mirror this Hub: repos not hosted here are fetched from it on first request, verified and "
        "cached (e.g. https://huggingface.co). With --offline: serve only what is cached, never contact it.",
    )
    m.add_argument(
        "--upstream-token-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="File holding the token the mirror sends upstream (first line).",
    )
    m.add_argument(
        "--upstream-ttl",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="Re-resolve branch and tag names upstream after this many seconds (default 300; commit shas "
        "never).",
    )
    m.add_argument(
        "--upstream-private",
        action="append",
        default=[],
        metavar="GLOB=WHO[,WHO...]",
        help="Let these mirror users (names, orgs, or '*' = every user) read upstream-private or gated repos "
        "matching GLOB (repeatable). Default: nobody sees them.",
    )
    m.add_argument(
        "--cache-size",
        default=None,
        metavar="SIZE",
        help="Limit mirrored file contents to SIZE (e.g. 200G); least recently used files are evicted.",
    )
    p.set_defaults(handler=serve)


def parse_user(text: str, where: str = "--user") -> UserSpec:
    """``NAME:TOKEN[:read|write]`` (from ``--user`` or a line of ``--users-file``) as a UserSpec."""
    from batuta_sync._redact import register_secret
    from batuta_sync.server import UserSpec

    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise UsageError(
            f"{where} expects NAME:TOKEN[:read|write], got {len(parts)} field(s).",
            hint="Example line: alice:hf_xxx:write (the token is never printed).",
        )
    register_secret(parts[1])
    role = parts[2] if len(parts) == 3 else "write"
    if role not in ("read", "write"):
        raise UsageError(f"{where}: the role must be 'read' or 'write', not {role!r}.")
    return UserSpec(parts[0], parts[1], role)


def _read_secret_file(path: Path, what: str) -> str:
    """The text of a file holding tokens; warns when other users of the machine may read it."""
    try:
        text = path.read_text("utf-8")
        mode = path.stat().st_mode
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise ConfigError(f"Cannot read the {what} {path}: {reason}.") from None
    if os.name == "posix" and mode & 0o077:
        print(
            f"batuta hub: warning: the {what} {path} is readable by other users (mode "
            f"{mode & 0o777:o}); `chmod 600 {path}`.",
            file=sys.stderr,
            flush=True,
        )
    return text


def load_users_file(path: Path) -> list[UserSpec]:
    """Users from a file: one ``NAME:TOKEN[:read|write]`` per line; ``#`` comments and blanks skipped."""
    users = []
    for n, raw in enumerate(_read_secret_file(path, "users file").splitlines(), 1):
        line = raw.strip()
        if line and not line.startswith("#"):
            users.append(parse_user(line, where=f"{path} line {n}"))
    return users


def admin_token(args: argparse.Namespace) -> str | None:
    """The control API's admin token: ``--admin-token-file`` (first line) or $BATUTA_HUB_ADMIN_TOKEN."""
    from batuta_sync._redact import register_secret

    if args.admin_token_file is not None:
        lines = _read_secret_file(args.admin_token_file, "admin token file").strip().splitlines()
        token = lines[0].strip() if lines else ""
        if not token:
            raise ConfigError(f"The admin token file {args.admin_token_file} is empty.")
    else:
        token = os.environ.get(ADMIN_TOKEN_ENV, "").strip()
    if token:
        register_secret(token)
    return token or None


def parse_org(text: str) -> tuple[str, list[str]]:
    org, sep, members = text.partition(":")
    names = [m.strip() for m in members.split(",") if m.strip()]
    if not sep or not org or not names:
        raise UsageError(
            f"--org expects ORG:MEMBER[,MEMBER...], got {text!r}.", hint="Example: --org acme:alice,bob"
        )
    return org, names


def load_config(path: Path) -> dict[str, Any]:
    """Read a serve config file (YAML or JSON) into {host, port, root, users: [UserSpec], orgs}."""
    from batuta_sync._redact import register_secret
    from batuta_sync.server import UserSpec

    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read the server config {path}: {exc.strerror}.") from exc
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"The server config {path} is not valid JSON: {exc}.") from exc
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"The server config {path} is not valid YAML: {exc}.") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"The server config {path} must be a mapping.")
    out: dict[str, Any] = {}
    for key in ("host", "port", "root"):
        if data.get(key) is not None:
            out[key] = data[key]
    users = []
    for i, u in enumerate(data.get("users") or []):
        if not isinstance(u, dict) or not u.get("name"):
            raise ConfigError(f"{path}: users[{i}] needs a name and a token (or token_env).")
        token = u.get("token")
        if not token and u.get("token_env"):
            token = os.environ.get(str(u["token_env"]))
        if not token:
            raise ConfigError(f"{path}: users[{i}] ({u['name']}) has no token (token or token_env).")
        register_secret(str(token))
        role = str(u.get("role") or "write")
        if role not in ("read", "write"):
            raise ConfigError(f"{path}: users[{i}] role must be read or write, not {role!r}.")
        users.append(UserSpec(str(u["name"]), str(token), role))
    out["users"] = users
    orgs = data.get("orgs") or {}
    if not isinstance(orgs, dict) or not all(isinstance(v, list) for v in orgs.values()):
        raise ConfigError(f"{path}: orgs must map an org name to a list of member names.")
    out["orgs"] = {str(k): [str(m) for m in v] for k, v in orgs.items()}
    return out


def build_server(args: argparse.Namespace) -> HubServer:
    """Turn parsed flags (+ optional config file) into a HubServer (not started)."""
    from batuta_sync.server import HubServer

    cfg: dict[str, Any] = load_config(args.config) if args.config else {"users": [], "orgs": {}}
    users = {u.name: u for u in cfg["users"]}
    if args.users_file is not None:
        users.update((u.name, u) for u in load_users_file(args.users_file))
    if args.user:
        print(
            "batuta hub: warning: --user puts a token on the command line, where other users of this "
            "machine can see it (ps, /proc); use --users-file or --config with token_env instead.",
            file=sys.stderr,
            flush=True,
        )
    for text in args.user:
        u = parse_user(text)
        users[u.name] = u
    orgs: dict[str, list[str]] = dict(cfg["orgs"])
    for text in args.org:
        org, members = parse_org(text)
        orgs[org] = members
    unknown = sorted({m for members in orgs.values() for m in members} - set(users))
    if unknown and users:
        raise UsageError(f"--org names members that are not users: {', '.join(unknown)}.")
    host = args.host or cfg.get("host") or "127.0.0.1"
    port = args.port if args.port is not None else int(cfg.get("port") or 0)
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, not {port}.")
    root = Path(args.root).expanduser()
    if root.exists() and not root.is_dir():
        raise UsageError(f"--root {root} exists and is not a directory.")
    if not 0.0 <= args.fault_rate <= 1.0:
        raise UsageError(f"--fault-rate must be between 0 and 1, not {args.fault_rate}.")
    upstream = mirror_config(args)
    try:
        srv = HubServer(
            root,
            host=host,
            port=port,
            users=list(users.values()),
            orgs=orgs,
            lfs_redirect=not args.no_lfs_redirect,
            control_api=args.control_api and not args.no_control_api,
            admin_token=admin_token(args),
            public_url=args.public_url,
            insecure_open_write=args.insecure_open_write,
            upstream=upstream,
        )
    except ValueError as exc:
        raise UsageError(
            f"Refusing to serve: {exc}.",
            hint="See `batuta hub serve --help`: --users-file, --admin-token-file, --public-url, "
            "--insecure-open-write.",
        ) from None
    if args.fault_rate:
        srv.faults.configure(fault_rate=args.fault_rate, fault_seed=args.fault_seed)
    return srv


def mirror_config(args: argparse.Namespace) -> MirrorConfig | None:
    """The pull-through mirror settings from ``--upstream`` and its companion flags (None: no mirror)."""
    from batuta_sync._redact import register_secret
    from batuta_sync.server.app import check_public_url
    from batuta_sync.server.mirror import AccessRule, MirrorConfig, parse_size

    if args.upstream is None:
        companions = [
            flag
            for flag, on in (
                ("--upstream-token-file", args.upstream_token_file is not None),
                ("--upstream-private", bool(args.upstream_private)),
                ("--cache-size", args.cache_size is not None),
            )
            if on
        ]
        if companions:
            raise UsageError(f"{', '.join(companions)} needs --upstream URL.")
        return None
    try:
        url = check_public_url(args.upstream)
        rules = tuple(AccessRule.parse(t) for t in args.upstream_private)
        size = parse_size(args.cache_size) if args.cache_size is not None else 0
    except ValueError as exc:
        raise UsageError(f"Invalid mirror setting: {exc}.", hint="See `batuta hub serve --help`.") from None
    if args.upstream_ttl < 0:
        raise UsageError(f"--upstream-ttl must not be negative, not {args.upstream_ttl}.")
    token = None
    if args.upstream_token_file is not None:
        lines = _read_secret_file(args.upstream_token_file, "upstream token file").strip().splitlines()
        token = lines[0].strip() if lines else ""
        if not token:
            raise ConfigError(f"The upstream token file {args.upstream_token_file} is empty.")
        register_secret(token)
    return MirrorConfig(
        url,
        token=token,
        ttl=args.upstream_ttl,
        offline=bool(getattr(args, "offline", False)),
        max_bytes=size,
        private_access=rules,
    )


def print_banner(s: HubServer, fault_seed: int = 0) -> None:
    """What ``hub serve`` prints once it listens: where, who may do what, and the risks."""
    from batuta_sync.server.app import is_loopback

    mode = (
        "open (every request acts as user 'local' with write access)"
        if s.open_mode
        else "users: "
        + ", ".join(f"{u.name} ({u.role})" for u in sorted(s.users.values(), key=lambda u: u.name))
    )
    print(f"batuta hub serving {s.root} at {s.url}", flush=True)
    print(f"  auth: {mode}", flush=True)
    print(f"  export HF_ENDPOINT={s.public_url or s.url}", flush=True)
    print("  uploads: Xet and classic LFS (huggingface_hub's defaults work; HF_HUB_DISABLE_XET is not needed)"
          if s.xet_enabled else "  uploads: classic LFS only (clients need HF_HUB_DISABLE_XET=1)", flush=True)
    rate = s.faults.snapshot()["fault_rate"]
    if rate:
        print(f"  random faults: {rate:.0%} of requests (seed {fault_seed})", flush=True)
    if s.mirror is not None:
        cfg = s.mirror.config
        state = "offline: cached content only" if cfg.offline else f"branches re-resolved after {cfg.ttl:g} s"
        print(f"  mirror of {cfg.upstream} ({state})", flush=True)
    if s.control_api:
        print("  control API: /_batuta/ (faults, request log, counters)", flush=True)
    if not is_loopback(s.host):
        risk = " with write access for everyone (--insecure-open-write)" if s.open_mode else ""
        print(
            f"  warning: listening on {s.host}, reachable beyond this machine{risk}",
            file=sys.stderr,
            flush=True,
        )


def serve(args: argparse.Namespace) -> int:
    srv = build_server(args)

    def ready(s: HubServer) -> None:
        print_banner(s, args.fault_seed)

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread
        pass
    try:
        srv.serve_forever(ready=ready)
    except OSError as exc:
        import errno

        if exc.errno == errno.EADDRINUSE:
            raise UsageError(
                f"Port {srv.port} on {srv.host} is already in use.", hint="Pick another --port or 0."
            )
        raise
    except KeyboardInterrupt:
        print("batuta hub stopped.", file=sys.stderr, flush=True)
    return 0
