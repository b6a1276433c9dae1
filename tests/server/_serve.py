"""Run ``batuta hub serve`` in-process for a CLI test: probe it once it answers, then Ctrl-C it."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx2 as httpx  # the one HTTP client library (huggingface_hub installs it)

from batuta_sync.cli import main


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_and_probe(root: Path, port: int, extra: Sequence[str], probe: Callable[[str], None]) -> int:
    """``batuta hub serve --root ROOT --port PORT *extra`` until ``probe(base_url)`` has run without
    an ``httpx.HTTPError`` (retried while the server starts), then SIGINT; returns the exit code."""

    def poke() -> None:
        deadline = time.monotonic() + 30  # bounded: a probe that keeps failing ends the serve too
        try:
            while time.monotonic() < deadline:
                try:
                    probe(f"http://127.0.0.1:{port}")
                except httpx.HTTPError:
                    time.sleep(0.05)
                    continue
                break
        finally:  # whatever the probe raised, Ctrl-C the server: the test fails, never hangs
            os.kill(os.getpid(), signal.SIGINT)

    t = threading.Thread(target=poke)
    t.start()
    try:
        return main(["hub", "serve", "--root", str(root), "--port", str(port), *extra])
    finally:
        t.join()
