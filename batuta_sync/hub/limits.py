"""Client limits of every Hub request: timeouts, size caps, pace (pure, stdlib only).

One :class:`NetLimits` value says how long batuta waits and how much it accepts; the API
transport (:mod:`batuta_sync.hub._http`), the download engine (:mod:`batuta_sync.hub.download`)
and uploads (:mod:`batuta_sync.hub.upload`) all take theirs from :meth:`NetLimits.from_settings`.

* **connect** (10 s) and **read** (60 s of silence) timeouts on every socket;
* a refused connection or a failed DNS lookup is retried ``connect_retries`` times after
  ``connect_backoff`` × 2\\ :sup:`n` s (0.25 s, 0.5 s), never on the 31 s rate-limit/5xx
  schedule; a server that accepts and then stays silent is retried ``timeout_retries`` times;
* a metadata (JSON) answer is at most ``max_body`` decoded bytes (64 MiB) and must arrive
  within ``json_total`` s (120 s); only ``gzip``/``deflate`` are decoded, with the output
  bounded while inflating, so a compression bomb costs at most the cap;
* every body (JSON or download) must average ``min_rate`` bytes/s over each ``rate_window``
  (1 KiB/s over 30 s, like curl's ``--speed-limit``/``--speed-time``): a peer that trickles one
  byte at a time is cut off, not waited for;
* a paginated listing follows at most ``max_pages`` ``Link: rel="next"`` pages holding
  ``max_listing`` decoded bytes in all, and never the same page twice;
* ``--timeout SECONDS`` / ``BATUTA_TIMEOUT`` (``Settings.timeout``) caps the connect and read
  timeouts and every retry or rate-limit wait (``max_sleep``).

Every limit ends in a :class:`~batuta_sync.errors.NetworkError` or
:class:`~batuta_sync.errors.HubError` (exit 9) naming the limit, never a hang or MemoryError.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from batuta_sync.errors import HubError, NetworkError

if TYPE_CHECKING:
    from batuta_sync.settings import Settings

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class NetLimits:
    """How long batuta waits for the Hub and how much it accepts (see the module docstring)."""

    connect: float = 10.0
    read: float = 60.0
    write: float = 60.0
    json_total: float = 120.0
    min_rate: float = 1024.0
    rate_window: float = 30.0
    max_body: int = 64 << 20
    max_pages: int = 10_000
    max_listing: int = 512 << 20
    connect_retries: int = 2
    connect_backoff: float = 0.25
    timeout_retries: int = 1
    max_sleep: float | None = None

    def with_timeout(self, timeout: float | None) -> NetLimits:
        """These limits under ``--timeout``: no connect/read timeout and no single wait above it."""
        if timeout is None:
            return self
        return replace(
            self,
            connect=min(self.connect, timeout),
            read=min(self.read, timeout),
            write=min(self.write, timeout),
            max_sleep=timeout if self.max_sleep is None else min(self.max_sleep, timeout),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> NetLimits:
        return cls().with_timeout(getattr(settings, "timeout", None))

    def sleep_cap(self, seconds: float) -> float:
        """A retry wait, shortened to ``max_sleep``."""
        return seconds if self.max_sleep is None else min(seconds, self.max_sleep)

    def connect_wait(self, retry_number: int) -> float:
        """Wait before quick retry ``retry_number`` (1-based) of a connection that failed."""
        return self.sleep_cap(self.connect_backoff * 2 ** (retry_number - 1))


class Pace:
    """Enforces ``min_rate`` over each ``rate_window`` (and an optional total deadline).

    Call :meth:`add` with every chunk received; it raises :class:`NetworkError` when the peer
    is too slow.  The check runs at each chunk, so together with the read timeout a transfer
    that falls below the rate ends within ``rate_window + read`` seconds.
    """

    def __init__(self, limits: NetLimits, what: str, *, total: float | None = None, clock: Clock = time.monotonic) -> None:
        self.limits = limits
        self.what = what
        self.total = total
        self._clock = clock
        self.start = self._window_start = clock()
        self._window_bytes = 0
        self.received = 0

    def add(self, n: int) -> None:
        now = self._clock()
        self.received += n
        self._window_bytes += n
        lim = self.limits
        if self.total is not None and now - self.start > self.total:
            raise NetworkError(
                f"{self.what} took more than {self.total:g} s ({self.received} bytes received); "
                "batuta gave up instead of waiting longer.",
                hint="The Hub or a proxy is answering very slowly; retry later or check the network.",
                code="too-slow",
            )
        elapsed = now - self._window_start
        if elapsed >= lim.rate_window:
            if self._window_bytes < lim.min_rate * elapsed:
                raise NetworkError(
                    f"{self.what} is too slow: {self._window_bytes} bytes in {elapsed:.0f} s, below the "
                    f"minimum of {lim.min_rate:g} bytes/s ({self.received} bytes received in all).",
                    hint="The Hub or a proxy is trickling data; retry later (downloads resume where they stopped).",
                    code="too-slow",
                )
            self._window_start = now
            self._window_bytes = 0


class BodyDecoder:
    """Decodes one response body (identity, gzip or deflate) into at most ``cap`` bytes.

    Inflating is bounded: each step produces at most what still fits under the cap, so a
    compression bomb is refused after ``cap`` bytes of output, whatever its ratio.  Any other
    ``Content-Encoding`` (br, zstd, a chain of codings) was not asked for and is refused.
    """

    def __init__(self, content_encoding: str, cap: int, what: str) -> None:
        codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        self.cap = cap
        self.what = what
        self.size = 0
        self._parts: list[bytes] = []
        self._mode = codings[0] if codings else "identity"
        if len(codings) > 1 or self._mode not in ("identity", "gzip", "x-gzip", "deflate"):
            raise HubError(
                f"{what} came with Content-Encoding '{content_encoding}', which batuta did not ask for "
                "(it accepts gzip, deflate or none).",
                hint="Check that the endpoint is a Hugging Face Hub and no proxy re-encodes its answers.",
            )
        self._z: zlib._Decompress | None = None
        self._head = b""  # deflate: the first bytes, until the zlib header can be recognised
        if self._mode in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def _append(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.cap:
            raise HubError(
                f"{self.what} is larger than {self.cap >> 20} MiB"
                + (" once decompressed" if self._mode != "identity" else "")
                + "; batuta refused it instead of running out of memory.",
                hint="A Hub answer this large is not normal: check HF_ENDPOINT, or narrow the request.",
                code="response-too-large",
            )
        if data:
            self._parts.append(data)

    def feed(self, raw: bytes) -> None:
        if self._mode == "identity":
            self._append(raw)
            return
        if self._z is None:  # deflate: zlib-wrapped (RFC 9110) or, as some servers send, raw
            self._head += raw
            if len(self._head) < 2:
                return
            raw, first = self._head, self._head[:2]
            wrapped = first[0] & 0x0F == 8 and ((first[0] << 8) | first[1]) % 31 == 0
            self._z = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        data = raw
        try:
            while data:
                out = self._z.decompress(data, self.cap - self.size + 1)
                self._append(out)
                if not out and self._z.unconsumed_tail == data:  # pragma: no cover - zlib made no progress
                    break
                data = self._z.unconsumed_tail
        except zlib.error as exc:
            raise HubError(f"{self.what} has a corrupt {self._mode} body ({exc}).") from None

    def finish(self) -> bytes:
        if self._z is None and self._head:  # a deflate body of one byte: not a valid stream
            raise HubError(f"{self.what} has a corrupt {self._mode} body (truncated).")
        if self._z is not None:
            try:
                self._append(self._z.flush())
            except zlib.error as exc:  # pragma: no cover - flush after a clean stream does not fail
                raise HubError(f"{self.what} has a corrupt {self._mode} body ({exc}).") from None
        return b"".join(self._parts)
