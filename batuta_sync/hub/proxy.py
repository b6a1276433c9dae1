"""Which proxy a Hub request goes through (pure, stdlib only): one rule for every transport.

* ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` (upper or lower case; lower case wins, as in
  curl and urllib) are read by :func:`urllib.request.getproxies` and
  :func:`urllib.request.proxy_bypass`, at each call;
* a loopback host (``127.0.0.1``, ``localhost``, ``::1``: ``batuta hub serve``, every test) is
  never proxied;
* the metadata client (httpx2, :mod:`batuta_sync.hub._http`) gets the same variables through its
  ``trust_env`` (on unless the endpoint is loopback); the download engine
  (:mod:`batuta_sync.hub.download`, ``http.client``) asks :func:`proxy_for` for every
  connection: an ``https://`` URL goes through a ``CONNECT`` tunnel (TLS end to end, the
  proxy sees only the host name), an ``http://`` URL is sent to the proxy as an absolute-URI
  request;
* the proxy itself is spoken to in plain HTTP (``http://host:port``, optionally
  ``user:password@`` for ``Proxy-Authorization: Basic``); another proxy scheme (``https://``,
  ``socks5://``) is a :class:`~batuta_sync.errors.ConfigError` for downloads, not a silent
  direct connection.
"""

from __future__ import annotations

import base64
import urllib.request
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from batuta_sync.errors import ConfigError

#: hosts that are never proxied (a Hub on this machine)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True, slots=True)
class Proxy:
    """A plain-HTTP proxy: where to connect and the ``Proxy-Authorization`` header, if any."""

    host: str
    port: int
    authorization: str | None = None

    def headers(self) -> dict[str, str]:
        return {"Proxy-Authorization": self.authorization} if self.authorization else {}


def is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "").lower() in LOOPBACK_HOSTS


def proxy_for(url: str) -> Proxy | None:
    """The proxy ``url`` must go through, or None for a direct connection."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host in LOOPBACK_HOSTS:
        return None
    raw = urllib.request.getproxies().get(parts.scheme.lower())
    if not raw:
        return None
    where = f"{host}:{parts.port}" if parts.port else host
    if urllib.request.proxy_bypass(where):
        return None
    if "://" not in raw:  # ``HTTP_PROXY=proxy:3128``, as curl accepts it
        raw = "http://" + raw
    p = urlsplit(raw)
    var = f"{parts.scheme.upper()}_PROXY"
    if p.scheme.lower() != "http" or not p.hostname:
        raise ConfigError(
            f"{var} is set to a {p.scheme or 'malformed'}:// proxy; batuta's downloads speak to a proxy "
            "in plain HTTP only (http://host:port), the connection to the Hub is still TLS through it.",
            hint=f"Set {var}=http://<proxy host>:<port>, or exclude the Hub with NO_PROXY.",
        )
    auth = None
    if p.username is not None:
        pair = f"{unquote(p.username)}:{unquote(p.password or '')}".encode()
        auth = "Basic " + base64.b64encode(pair).decode("ascii")
    return Proxy(p.hostname, p.port or 80, auth)
