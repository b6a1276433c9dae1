"""One settings resolution, used by every command and the Python API.

Precedence, highest first (documented in ``docs/configuration.md``)::

    CLI flag  >  environment  >  hf.yaml (defaults/policies)  >  built-in default

Environment variables: ``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HOME``, ``HF_HUB_CACHE``,
``HF_HUB_OFFLINE`` (also ``BATUTA_METADATA_TTL`` seconds, ``BATUTA_TRUSTED_ENDPOINTS``).  The token is also read
from ``$HF_HOME/token`` (where ``batuta hf login`` stores it, like huggingface_hub)
and the legacy ``~/.huggingface/token``.  It is wrapped in :class:`Secret` so it
never prints.

Endpoint trust: the token goes only to an endpoint the user chose *outside* the repository
(``--endpoint``, ``HF_ENDPOINT``, or the default ``https://huggingface.co`` the login token is
for) or to an hf.yaml endpoint the user trusted explicitly (``--trust-endpoint URL``,
repeatable, or ``BATUTA_TRUSTED_ENDPOINTS``, comma/space separated).  An hf.yaml endpoint
that is neither, with a token at hand and not offline, is refused with
:class:`UntrustedEndpointError` (exit 22) before any request: a pull request that edits
``defaults.endpoint`` cannot make a CI job send its token to another host.  Without a token
the hf.yaml endpoint is used anonymously (nothing secret to leak).

Pure: :func:`resolve_settings` takes the environment as a mapping and only reads
token files, so it is trivially testable.

Token sources, first match wins: ``--token`` > ``--token-file`` > ``HF_TOKEN`` >
``$HF_HOME/token`` > ``~/.huggingface/token``; an empty ``--token ""`` or a set but empty
``HF_TOKEN=`` means anonymous.  ``--timeout`` / ``BATUTA_TIMEOUT`` (seconds) is
``Settings.timeout``: the longest connect/read timeout and retry wait (``hub/limits.py``).
``--remote URL`` / ``BATUTA_REMOTE`` / hf.yaml ``defaults.remote`` is ``Settings.remote``, the
shared remote (``s3://bucket/prefix`` or ``file:///path``; credentials come only from the AWS
configuration, never from the URL, so the URL prints safely; ``docs/remote.md``);
``BATUTA_LEASE_TTL`` (seconds) is the time to live of its apply lease (``Settings.lease_ttl``).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batuta_sync._redact import Secret
from batuta_sync.errors import BatutaError

DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_METADATA_TTL = 600.0
_TRUE = {"1", "true", "yes", "on", "y", "t"}


class HfAuth(enum.Enum):
    """Where the token came from (spec: ``HfAuth``)."""

    TOKEN = "token"  # explicit: --token flag or Python argument
    TOKEN_FILE = "token-file"  # --token-file F
    ENV_TOKEN = "env"  # HF_TOKEN
    FILE_TOKEN = "file"  # $HF_HOME/token or ~/.huggingface/token
    NONE = "none"  # anonymous: public repos only


class UntrustedEndpointError(BatutaError):
    """hf.yaml names an endpoint the user did not trust, and a token would go to it."""

    code = "untrusted-endpoint"
    exit_name = "untrusted-endpoint"


def endpoint_key(url: str) -> str:
    """The comparable form of an endpoint: lower-case scheme and host, explicit port, no
    trailing slash, no userinfo (``https://HF.co/`` == ``https://hf.co:443``)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    port = port or {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}{parts.path.rstrip('/')}"


def endpoint_display(url: str) -> str:
    """``url`` without userinfo (a password in an endpoint URL never prints)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def parse_endpoint_list(text: str | None) -> tuple[str, ...]:
    """``BATUTA_TRUSTED_ENDPOINTS``: URLs separated by commas and/or whitespace."""
    return tuple(u for u in (text or "").replace(",", " ").split() if u)


def env_flag(value: str | None) -> bool:
    return (value or "").strip().lower() in _TRUE


@dataclass(frozen=True)
class Settings:
    endpoint: str = DEFAULT_ENDPOINT
    token: Secret | None = field(default=None, repr=False)
    auth: HfAuth = HfAuth.NONE
    hf_home: Path = field(default_factory=lambda: Path("~/.cache/huggingface").expanduser())
    hub_cache: Path = field(default_factory=lambda: Path("~/.cache/huggingface/hub").expanduser())
    #: --timeout / BATUTA_TIMEOUT: no connect/read timeout and no retry wait longer (hub/limits.py)
    timeout: float | None = None
    offline: bool = False
    metadata_ttl: float = DEFAULT_METADATA_TTL
    endpoint_source: str = "default"  # flag | env | hf.yaml | default
    trusted_endpoints: tuple[str, ...] = ()
    allow_outside_workspace: bool = False  # --allow-outside-workspace (command line only)
    #: --remote / BATUTA_REMOTE / hf.yaml ``defaults.remote``: the shared remote (docs/remote.md)
    remote: str | None = None
    #: BATUTA_LEASE_TTL (seconds): the remote apply lease's time to live (default 300 s; docs/remote.md)
    lease_ttl: float | None = None

    @property
    def token_path(self) -> Path:
        """Where ``batuta hf login`` stores the token (same place as huggingface_hub)."""
        return self.hf_home / "token"

    @property
    def batuta_dir(self) -> Path:
        """batuta's own state: metadata cache, hash cache, cache statistics."""
        return self.hf_home / "batuta"

    def token_value(self) -> str | None:
        return self.token.get() if self.token else None


def _read_token_file(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None


def parse_timeout(raw: str | float, source: str) -> float:
    """A ``--timeout`` / ``BATUTA_TIMEOUT`` value: seconds, > 0 and finite (ConfigError otherwise)."""
    import math

    from batuta_sync.errors import ConfigError

    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (0 < value < math.inf):
        raise ConfigError(
            f"{source}={raw!r} is not a valid timeout: expected a number of seconds greater than 0 (e.g. 5).",
            hint=f"Fix or unset {source}.",
        )
    return value


def read_token_file(path: Path) -> str | None:
    """The token stored in ``path`` (``--token-file``): ConfigError when unreadable, None when empty."""
    from batuta_sync.errors import ConfigError

    try:
        text = path.expanduser().read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"Cannot read the token file {path}: {getattr(exc, 'strerror', None) or exc}.",
            hint="Check the path given to --token-file (the file holds only the token).",
        ) from None
    return text or None


def resolve_settings(
    *,
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    manifest: Mapping[str, Any] | None = None,
    home: Path | None = None,
) -> Settings:
    """Resolve settings from CLI ``flags`` > ``env`` > ``manifest`` defaults > built-ins.

    ``flags`` keys: endpoint, token, offline, hf_home, hub_cache, metadata_ttl (None = unset),
    trust_endpoint (a list of URLs), allow_outside_workspace, remote.
    ``manifest`` is the hf.yaml ``defaults``/``policies`` merged mapping (keys: endpoint,
    offline, cache_dir, metadata_ttl, remote).  Raises :class:`UntrustedEndpointError` (see above).
    """
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    env = os.environ if env is None else env
    manifest = manifest or {}
    home = home or Path.home()

    def pick(flag: str, env_key: str | None, man_key: str | None, default: Any) -> Any:
        if flag in flags:
            return flags[flag]
        if env_key and env.get(env_key):
            return env[env_key]
        if man_key and manifest.get(man_key) is not None:
            return manifest[man_key]
        return default

    hf_home = Path(pick("hf_home", "HF_HOME", None, str(home / ".cache" / "huggingface"))).expanduser()
    hub_cache = Path(pick("hub_cache", "HF_HUB_CACHE", "cache_dir", str(hf_home / "hub"))).expanduser()
    endpoint = str(pick("endpoint", "HF_ENDPOINT", "endpoint", DEFAULT_ENDPOINT)).rstrip("/")
    if "endpoint" in flags:
        source = "flag"
    elif env.get("HF_ENDPOINT"):
        source = "env"
    elif manifest.get("endpoint") is not None:
        source = "hf.yaml"
    else:
        source = "default"
    trusted = (*(str(u) for u in flags.get("trust_endpoint") or ()), *parse_endpoint_list(env.get("BATUTA_TRUSTED_ENDPOINTS")))
    offline_raw = pick("offline", "HF_HUB_OFFLINE", "offline", False)
    offline = offline_raw if isinstance(offline_raw, bool) else env_flag(str(offline_raw))
    ttl = float(pick("metadata_ttl", "BATUTA_METADATA_TTL", "metadata_ttl", DEFAULT_METADATA_TTL))
    remote = str(pick("remote", "BATUTA_REMOTE", "remote", "")).strip() or None

    # more flags: token_file, timeout; token="" = anonymous
    from batuta_sync._redact import register_url_secrets

    register_url_secrets(endpoint)  # a password in the endpoint URL is masked in every message
    raw_timeout = flags.get("timeout", env.get("BATUTA_TIMEOUT") or None)
    timeout = None
    if raw_timeout is not None:
        timeout = parse_timeout(raw_timeout, "--timeout" if "timeout" in flags else "BATUTA_TIMEOUT")
    lease_ttl = parse_timeout(env["BATUTA_LEASE_TTL"], "BATUTA_LEASE_TTL") if env.get("BATUTA_LEASE_TTL") else None

    token: str | None
    if "token" in flags:  # --token "" = anonymous, whatever HF_TOKEN or the stored login say
        token = str(flags["token"]).strip() or None
        auth = HfAuth.TOKEN if token else HfAuth.NONE
    elif "token_file" in flags:
        token = read_token_file(Path(str(flags["token_file"])))
        auth = HfAuth.TOKEN_FILE if token else HfAuth.NONE
    elif "HF_TOKEN" in env:  # HF_TOKEN= (set, empty) = anonymous
        token = env["HF_TOKEN"].strip() or None
        auth = HfAuth.ENV_TOKEN if token else HfAuth.NONE
    else:
        token = _read_token_file(hf_home / "token") or _read_token_file(home / ".huggingface" / "token")
        auth = HfAuth.FILE_TOKEN if token else HfAuth.NONE

    settings = Settings(
        endpoint=endpoint,
        token=Secret(token) if token else None,
        auth=auth,
        timeout=timeout,
        hf_home=hf_home,
        hub_cache=hub_cache,
        offline=offline,
        metadata_ttl=ttl,
        endpoint_source=source,
        trusted_endpoints=trusted,
        allow_outside_workspace=bool(flags.get("allow_outside_workspace")),
        remote=remote,
        lease_ttl=lease_ttl,
    )
    check_endpoint_trust(settings)
    return settings


def endpoint_trusted(settings: Settings) -> bool:
    """True when the token may go to ``settings.endpoint`` (see the module docstring)."""
    if settings.endpoint_source != "hf.yaml":
        return True
    key = endpoint_key(settings.endpoint)
    allowed = {endpoint_key(DEFAULT_ENDPOINT), *(endpoint_key(u) for u in settings.trusted_endpoints)}
    return key in allowed


def check_endpoint_trust(settings: Settings) -> None:
    """Refuse (exit 22) an hf.yaml endpoint the user did not trust while a token is at hand."""
    if settings.token is None or settings.offline or endpoint_trusted(settings):
        return
    shown = endpoint_display(settings.endpoint)
    raise UntrustedEndpointError(
        f"hf.yaml sets the Hub endpoint to {shown}, which you have not trusted, and a token "
        f"({settings.auth.value}) is available: batuta will not send it there. Nothing was requested.",
        hint=(
            f"If you trust this host with your token, pass `--trust-endpoint {shown}` (or set "
            f"BATUTA_TRUSTED_ENDPOINTS), or choose the endpoint yourself with --endpoint / HF_ENDPOINT. "
            "Without a token (HF_TOKEN unset, no stored login) it is used anonymously."
        ),
    )
