"""The one HTTP transport to the Hub: auth, user agent, retries, rate-limit waits, error mapping.

Every Hub request of batuta (search, info, downloads, uploads) goes through one
:class:`HubHttp` per command.  Policy (see :mod:`batuta_sync.hub.ratelimit`):

* retries with tenacity: only 408/429/5xx, timeouts and connection errors;
  backoff 1, 2, 4, 8, 16 s (cap 60 s, 5 retries); server hints (``Retry-After``,
  ``RateLimit … t=N``) are a minimum;
* a 429 closes the endpoint's process-wide :class:`~batuta_sync.hub.ratelimit.Gate`
  (:func:`~batuta_sync.hub.ratelimit.shared_gate`, also used by the download engine), so every
  worker thread pauses, API calls and downloads alike, not only the one that was told;
* the initial backoff follows ``BATUTA_RETRY_BACKOFF`` when no ``config`` is given
  (:meth:`~batuta_sync.hub.ratelimit.RateLimitConfig.from_env`);
* ``no_wait`` / ``max_wait`` raise :class:`~batuta_sync.errors.RateLimitedError` instead of
  waiting; ``on_wait(seconds, reason)`` is called before every wait (the CLI shows it);
* a final error response becomes a BatutaError via :mod:`batuta_sync.hub.errors_map`;
* ``settings.offline`` raises :class:`~batuta_sync.errors.OfflineError` before any socket
  is opened;
* client limits (:mod:`batuta_sync.hub.limits`): connect/read timeouts; a refused connection
  or DNS failure gets a few quick retries (0.25 s, 0.5 s), a silent server one retry, not the
  5xx schedule; every answer is read as a stream, decoded with its size capped, at a minimum
  pace and (metadata) within a total deadline; pagination never revisits a page and stops
  at ``max_pages``; ``--timeout`` (``settings.timeout``) caps every wait, ``no_wait`` makes
  none (a failure is final at the first attempt).

``sleep`` and ``clock`` are injectable so tests record waits instead of sleeping.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import tenacity

from batuta_sync._version import __version__
from batuta_sync.errors import HubError, NetworkError, OfflineError, RateLimitedError
from batuta_sync.hub import ratelimit
from batuta_sync.hub.auth import auth_headers, origin
from batuta_sync.hub.errors_map import error_for
from batuta_sync.hub.limits import BodyDecoder, NetLimits, Pace
from batuta_sync.settings import Settings

_TRANSPORT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
#: the connection never got through (refused, DNS failure, connect timeout): a few quick retries
_CONNECT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout)
#: connected, then the server said nothing for ``limits.read`` seconds
_SILENT_ERRORS = (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout)
_ERROR_BODY = 64 * 1024  # bytes of an error answer kept for its message
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 10

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def _timeout(limits: NetLimits) -> httpx.Timeout:
    return httpx.Timeout(connect=limits.connect, read=limits.read, write=limits.write, pool=30.0)


DEFAULT_TIMEOUT = _timeout(NetLimits())


class _RetryableResponse(Exception):
    """A response with a retryable status (408/429/5xx); carries what the error needs."""

    def __init__(self, status: int, headers: Mapping[str, str], path: str, body: str, method: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.headers = headers
        self.path = path
        self.body = body
        self.method = method


DEFAULT_MAX_WAIT = ratelimit.DEFAULT_MAX_WAIT


class HubHttp:
    """One HTTP/1.1 keep-alive client to one Hub endpoint; thread-safe.

    Args:
        settings: endpoint, token, offline flag.
        sleep: how to wait (tests inject a recorder).
        max_wait: longest rate-limit wait accepted, in seconds (default 300 s = one Hub rate-limit
            window, security.md RL-3; ``None`` or ``inf`` = no limit).
        no_wait: never wait for a rate limit; fail with RateLimitedError at once.
        on_wait: called as ``on_wait(seconds, reason)`` before every wait.
        config: the backoff schedule (default 1 s × 2, cap 60 s, 5 retries; the initial backoff
            from ``BATUTA_RETRY_BACKOFF`` when set).
        clock: monotonic clock of a private pause (tests inject a fake one); without it (and
            without ``gate``) the endpoint's process-wide gate is used.
        gate: the pause to share (default: ``ratelimit.shared_gate(endpoint)``).
        transport: an httpx transport (tests may pass ``httpx.MockTransport``).
        limits: timeouts, size caps and pace (default ``NetLimits.from_settings(settings)``);
            ``timeout`` overrides only the httpx timeouts.
        pace_clock: the clock of the pace checks (tests inject a fake one).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        max_wait: float | None = DEFAULT_MAX_WAIT,
        no_wait: bool = False,
        on_wait: Callable[[float, str], None] | None = None,
        config: ratelimit.RateLimitConfig | None = None,
        clock: Callable[[], float] | None = None,
        gate: ratelimit.Gate | None = None,
        timeout: httpx.Timeout | float | None = None,
        transport: httpx.BaseTransport | None = None,
        limits: NetLimits | None = None,
        pace_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.config = config or ratelimit.RateLimitConfig.from_env()
        self.limits = limits or NetLimits.from_settings(settings)
        self._sleep = sleep
        self._wait_flag = "--max-wait"
        cap = self.limits.max_sleep
        if cap is not None and (max_wait is None or cap < max_wait):  # --timeout: a longer wait fails
            max_wait, self._wait_flag = cap, "--timeout"
        self.max_wait = max_wait
        self.no_wait = no_wait
        self.on_wait = on_wait
        self._pace_clock = pace_clock
        self._timeout = timeout if timeout is not None else _timeout(self.limits)
        self._transport = transport
        if gate is None:
            gate = ratelimit.Gate(clock) if clock is not None else ratelimit.shared_gate(self.endpoint)
        self._gate = gate  # shared by every thread of this client (and, by default, every transport)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._origin = origin(self.endpoint)
        #: requests actually sent (attempts), for diagnostics and benchmarks
        self.sent = 0

    # ------------------------------------------------------------------ properties
    @property
    def offline(self) -> bool:
        return self.settings.offline

    @property
    def endpoint(self) -> str:
        return self.settings.endpoint.rstrip("/")

    @property
    def has_token(self) -> bool:
        return self.settings.token is not None

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> HubHttp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing
    def _get_client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    timeout=self._timeout,
                    follow_redirects=False,  # followed in _send: token per hop, bodies unread
                    http1=True,
                    http2=False,
                    # HTTP(S)_PROXY / SSL_CERT_FILE apply to a remote Hub, never to a loopback one
                    trust_env=self._origin[1] not in _LOOPBACK,
                    limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
                    transport=self._transport,
                )
            return self._client

    def url(self, path_or_url: str) -> str:
        """Absolute URL for an endpoint-relative path (``/api/models``) or an absolute URL."""
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return self.endpoint + ("" if path_or_url.startswith("/") else "/") + path_or_url

    def headers_for(self, url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """User agent, and the token only for the endpoint's own origin (never a CDN/LFS host)."""
        h = {
            "user-agent": f"batuta/{__version__}; python/{sys.version_info[0]}.{sys.version_info[1]}",
            "accept-encoding": "gzip, deflate",  # what BodyDecoder inflates (bounded); nothing else
        }
        h.update(auth_headers(self.settings, url))
        if extra:
            h.update(extra)
        return h

    def _check_offline(self, method: str, url: str) -> None:
        if self.settings.offline:
            raise OfflineError(
                f"Offline mode (--offline / HF_HUB_OFFLINE=1): batuta did not contact the Hub for "
                f"{method} {urlsplit(url).path}."
            )

    def _rate_limited(self, seconds: float, hint: ratelimit.ServerHint | None, why: str) -> RateLimitedError:
        bucket = f" (bucket '{hint.bucket}')" if hint and hint.bucket else ""
        quota = ""
        if hint and hint.quota is not None and hint.window is not None:
            quota = f" Quota: {hint.quota} requests per {hint.window} s window."
        limit = "--no-wait" if self.no_wait else f"{self._wait_flag} {self.max_wait:g}"
        return RateLimitedError(
            f"The Hub is rate limiting {self.endpoint}{bucket}: {why} asks to wait {round(seconds)} s, "
            f"and {limit} does not allow it.{quota} Retry {ratelimit.retry_at_text(seconds)}.",
            hint="Retry after that time, raise --max-wait, or log in (`batuta hf login`) for a larger quota.",
        )

    def _may_wait(self, seconds: float) -> bool:
        if self.no_wait:
            return seconds <= 0
        return self.max_wait is None or seconds <= self.max_wait

    def _notify(self, seconds: float, reason: str) -> None:
        if self.on_wait is not None:
            self.on_wait(seconds, reason)

    @property
    def gate(self) -> ratelimit.Gate:
        """The rate-limit pause this client honours (by default shared with the download engine)."""
        return self._gate

    def _pass_gate(self) -> None:
        """Before a request: wait out a pause another worker's 429 started."""
        until = self._gate.until
        left = self._gate.remaining()
        if left <= 0:
            return
        if not self._may_wait(left):
            raise self._rate_limited(left, None, "another request was rate limited; the Hub")
        self._notify(left, "rate limited (shared pause)")
        self._sleep(left)
        self._gate.reached(until)

    def _retry_sleep(self, seconds: float) -> None:
        """tenacity's sleep: after waiting out our own 429, that pause is over for everyone."""
        self._sleep(seconds)
        target = getattr(self._local, "pending", 0.0)
        if target:
            self._local.pending = 0.0
            self._gate.reached(target)

    # ------------------------------------------------------------------ retry policy
    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hint = None
        if isinstance(exc, _RetryableResponse):
            hint = ratelimit.server_hint(exc.headers)
        if isinstance(exc, _CONNECT_ERRORS):
            return self.limits.connect_wait(state.attempt_number)
        seconds = ratelimit.compute_wait(self.config, state.attempt_number, hint)
        self._local.pending = 0.0
        if isinstance(exc, _RetryableResponse) and exc.status == 429:
            if not self._may_wait(seconds):
                raise self._rate_limited(
                    seconds, hint, f"its {hint.source} header" if hint else "the backoff schedule"
                )
            self._local.pending = self._gate.close(seconds)
            return seconds
        return self.limits.sleep_cap(seconds)

    def _stop(self, state: tenacity.RetryCallState) -> bool:
        """Connection failures: a few quick retries; a silent server: one; the rest: the schedule."""
        if self.no_wait:
            return True
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _CONNECT_ERRORS):
            return state.attempt_number > self.limits.connect_retries
        if isinstance(exc, _SILENT_ERRORS):
            return state.attempt_number > self.limits.timeout_retries
        return state.attempt_number > self.config.max_retries

    def _before_sleep(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        seconds = state.next_action.sleep if state.next_action else 0.0
        if isinstance(exc, _RetryableResponse):
            reason = "rate limited (429)" if exc.status == 429 else f"Hub answered {exc.status}"
        else:
            reason = f"connection problem ({type(exc).__name__})"
        self._notify(float(seconds), reason)

    def _retrying(self, retry: bool) -> tenacity.Retrying:
        return tenacity.Retrying(
            sleep=self._retry_sleep,
            stop=self._stop if retry else tenacity.stop_after_attempt(1),
            wait=self._wait,
            retry=tenacity.retry_if_exception_type((_RetryableResponse, *_TRANSPORT_ERRORS)),
            before_sleep=self._before_sleep,
            reraise=True,
        )

    def _final_error(self, exc: BaseException, attempts: int, url: str, method: str) -> Exception:
        if isinstance(exc, _RetryableResponse):
            return error_for(
                exc.status,
                exc.headers,
                exc.path,
                exc.body,
                method=exc.method,
                has_token=self.has_token,
                endpoint=self.endpoint,
                attempts=attempts,
                token_source=self.settings.auth.value,
            )
        detail = str(exc) or type(exc).__name__
        tries = f"{attempts} attempt{'s' if attempts > 1 else ''}" + (" (--no-wait)" if self.no_wait else "")
        if isinstance(exc, _SILENT_ERRORS):
            return NetworkError(
                f"{self.endpoint} did not answer {method} {urlsplit(url).path} within "
                f"{self.limits.read:g} s ({tries}): {type(exc).__name__}.",
                hint="The Hub (or a proxy) accepted the connection but stayed silent; retry later, "
                "or raise --timeout.",
            )
        hint = None
        if isinstance(exc, _CONNECT_ERRORS):
            hint = "Check HF_ENDPOINT / --endpoint and the network; use --offline to work from the cache."
        return NetworkError(
            f"Could not reach {self.endpoint} for {method} {urlsplit(url).path} after {tries}: "
            f"{type(exc).__name__}: {detail}.",
            hint=hint,
        )

    def _check(self, resp: httpx.Response, method: str, allow: Collection[int]) -> None:
        status = resp.status_code
        if status < 400 or status in allow:
            return
        body = _error_text(resp)
        resp.close()
        headers = {k.lower(): v for k, v in resp.headers.items()}
        path = resp.request.url.raw_path.decode("ascii", "replace")
        if ratelimit.is_retryable_status(status):
            raise _RetryableResponse(status, headers, path, body, method)
        raise error_for(
            status,
            headers,
            path,
            body,
            method=method,
            has_token=self.has_token,
            endpoint=self.endpoint,
            token_source=self.settings.auth.value,
        )

    # ------------------------------------------------------------------ public API
    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Any = None,
        json: Any = None,
        content: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        retry: bool = True,
        allow: Collection[int] = (),
    ) -> httpx.Response:
        """Send a request with the full policy; returns the (read) response.

        Raises the mapped BatutaError for a 4xx/5xx (after retries) unless its status is in
        ``allow``.  ``retry=False`` sends exactly once (for non-idempotent writes).  A retried
        request re-sends ``content``/``json``/``data``: pass bytes, not a one-shot stream.
        The body is read under the client limits (size cap after decoding, pace, deadline):
        the returned response holds the decoded bytes and no ``Content-Encoding``.
        """
        url = self.url(path_or_url)
        self._check_offline(method, url)
        client = self._get_client()
        attempts = 0
        try:
            for attempt in self._retrying(retry):
                with attempt:
                    attempts += 1
                    self._pass_gate()
                    self.sent += 1
                    resp = self._send(
                        client, method, url, params=params, json=json, content=content, data=data, headers=headers
                    )
                    try:
                        self._check(resp, method, allow)
                        return self._read_bounded(resp, method)
                    finally:
                        resp.close()
        except (_RetryableResponse, *_TRANSPORT_ERRORS) as exc:
            raise self._final_error(exc, attempts, url, method) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(
        self,
        client: httpx.Client,
        method: str,
        url: str,
        *,
        params: Any = None,
        json: Any = None,
        content: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One request, redirects followed here: every hop gets :meth:`headers_for` its own URL
        (the token only on the endpoint's origin), and a redirect's body is never read."""
        for _hop in range(_MAX_REDIRECTS + 1):
            req = client.build_request(
                method, url, params=params, json=json, content=content, data=data, headers=self.headers_for(url, headers)
            )
            resp = client.send(req, stream=True)
            location = resp.headers.get("location")
            if resp.status_code not in _REDIRECTS or not location:
                return resp
            resp.close()
            url = str(req.url.join(location))
            params = None
            if resp.status_code == 303 or (resp.status_code in (301, 302) and method not in ("GET", "HEAD")):
                method, json, content, data = "GET", None, None, None
        raise HubError(
            f"Too many redirects ({_MAX_REDIRECTS}) for {method} {urlsplit(url).path} on {self.endpoint}.",
            hint="The server (or a proxy) redirects in a loop; check HF_ENDPOINT.",
        )

    def _read_bounded(self, resp: httpx.Response, method: str) -> httpx.Response:
        """The body of ``resp`` decoded under ``max_body``, ``min_rate`` and ``json_total``."""
        what = f"The answer to {method} {urlsplit(str(resp.request.url)).path}"
        lim = self.limits
        decoder = BodyDecoder(resp.headers.get("content-encoding", ""), lim.max_body, what)
        pace = Pace(lim, what, total=lim.json_total, clock=self._pace_clock)
        for chunk in resp.iter_raw():
            pace.add(len(chunk))
            decoder.feed(chunk)
        body = decoder.finish()
        headers = [(k, v) for k, v in resp.headers.multi_items() if k.lower() not in _REENCODED]
        return httpx.Response(
            resp.status_code, headers=headers, content=body, request=resp.request, extensions=resp.extensions
        )

    @contextmanager
    def stream(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        retry: bool = True,
        allow: Collection[int] = (),
    ) -> Iterator[httpx.Response]:
        """Open a streamed response with the same policy; the caller reads the body.

        Only opening is retried; errors while reading the body are the caller's to handle.
        """
        url = self.url(path_or_url)
        self._check_offline(method, url)
        client = self._get_client()
        attempts = 0
        resp: httpx.Response | None = None
        try:
            for attempt in self._retrying(retry):
                with attempt:
                    attempts += 1
                    self._pass_gate()
                    self.sent += 1
                    resp = self._send(client, method, url, params=params, headers=headers)
                    self._check(resp, method, allow)
        except (_RetryableResponse, *_TRANSPORT_ERRORS) as exc:
            raise self._final_error(exc, attempts, url, method) from None
        assert resp is not None
        try:
            yield resp
        finally:
            resp.close()

    def get_json(
        self, path_or_url: str, *, params: Any = None, headers: Mapping[str, str] | None = None
    ) -> Any:
        """GET and decode JSON (a non-JSON body is a HubError naming the URL)."""
        resp = self.request("GET", path_or_url, params=params, headers=headers)
        return self._decode(resp)

    def get_json_pages(self, path_or_url: str, *, params: Any = None, limit: int | None = None) -> list[Any]:
        """GET a JSON array, following ``Link: <…>; rel="next"`` pages (up to ``limit`` items)."""
        items: list[Any] = []
        url: str | None = path_or_url
        first = True
        seen: set[str] = set()
        size = 0
        lim = self.limits
        while url:
            resp = self.request("GET", url, params=params if first else None)
            first = False
            here = str(resp.request.url)
            seen.add(here)
            size += len(resp.content)
            page = self._decode(resp)
            if not isinstance(page, list):
                raise HubError(
                    f"Expected a JSON list from {urlsplit(str(resp.url)).path}, got {type(page).__name__}."
                )
            items.extend(page)
            if limit is not None and len(items) >= limit:
                return items[:limit]
            nxt = resp.links.get("next", {}).get("url")
            url = self.url(str(httpx.URL(here).join(nxt))) if nxt else None
            if url is None:
                break
            listing = urlsplit(path_or_url).path
            if url in seen:
                raise HubError(
                    f"The Hub's pagination for {listing} loops: page {len(seen)} links back to a page "
                    "already read.",
                    hint="The server is misbehaving; batuta stopped instead of reading forever.",
                    code="pagination-loop",
                )
            if len(seen) >= lim.max_pages or size > lim.max_listing:
                raise HubError(
                    f"The Hub's listing of {listing} goes on past {len(seen)} pages "
                    f"({size >> 20} MiB); batuta stops at {lim.max_pages} pages / {lim.max_listing >> 20} MiB.",
                    hint="The server is misbehaving or the listing is unusually large; narrow the request.",
                    code="pagination-too-long",
                )
        return items

    @staticmethod
    def _decode(resp: httpx.Response) -> Any:
        try:
            return resp.json()
        except RecursionError:  # ``[[[[…`` nested deeper than Python's stack: hostile, not JSON we use
            raise HubError(
                f"The Hub's answer for {urlsplit(str(resp.url)).path} nests JSON too deeply to read.",
                hint="Check that HF_ENDPOINT points at a Hugging Face Hub (or `batuta hub serve`).",
                code="response-too-deep",
            ) from None
        except ValueError:
            raise HubError(
                f"The Hub sent a non-JSON answer for {urlsplit(str(resp.url)).path} "
                f"(content-type {resp.headers.get('content-type', '?')}).",
                hint="Check that HF_ENDPOINT points at a Hugging Face Hub (or `batuta hub serve`).",
            )


#: headers that describe the raw body: gone once ``_read_bounded`` has decoded it
_REENCODED = frozenset({"content-encoding", "content-length", "transfer-encoding"})


def _error_text(resp: httpx.Response) -> str:
    """At most ``_ERROR_BODY`` bytes of an error answer, decoded (a hostile 5xx body can be endless)."""
    raw = b""
    try:
        for chunk in resp.iter_raw():
            raw += chunk
            if len(raw) >= _ERROR_BODY:
                break
        decoder = BodyDecoder(resp.headers.get("content-encoding", ""), _ERROR_BODY, "error answer")
        decoder.feed(raw[:_ERROR_BODY])
        body = decoder.finish()
    except (httpx.HTTPError, HubError):
        return ""
    return body[:2000].decode("utf-8", "replace")


_HF_HUB_LIMITS: list[tuple[float, float, float]] = []  # [the timeouts huggingface_hub's client has]
_HF_HUB_LOCK = threading.Lock()


def limit_huggingface_hub(limits: NetLimits) -> None:
    """Give huggingface_hub's shared client (pushes go through ``HfApi``) our connect / read /
    write timeouts: its default client has none, so a Hub that accepts and stays silent would
    hang a push forever.  The client is rebuilt only when the timeouts change."""
    key = (limits.connect, limits.read, limits.write)
    with _HF_HUB_LOCK:
        if _HF_HUB_LIMITS and _HF_HUB_LIMITS[-1] == key:
            return
        import huggingface_hub
        from huggingface_hub.utils import _http as hf_http

        base = hf_http.default_client_factory

        def factory() -> Any:
            client = base()
            client.timeout = type(client.timeout)(connect=key[0], read=key[1], write=key[2], pool=30.0)
            return client

        huggingface_hub.set_client_factory(factory)
        _HF_HUB_LIMITS[:] = [key]
