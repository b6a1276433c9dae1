"""A malicious Hub: a tiny HTTP server of our own on 127.0.0.1 answers every API call with crafted
JSON (huge or negative sizes, traversal names, deep nesting, wrong types, lying headers) and file
bodies that do not match.  ``batuta hf info`` / ``hf pull`` / ``plan`` must end with a BatutaError
exit code (never a traceback), write nothing outside the cache, and stay within time/memory bounds.
"""

from __future__ import annotations

import json
import threading
import time
import tracemalloc
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from batuta_sync.errors import EXIT_CODES
from tests.fuzz import strategies as S
from tests.reliability._harness import cache_env, full_mode, run_cli

ERROR_CODES = {code for code, _ in EXIT_CODES.values()} - {0, 2, 130}
SHA = "a" * 40


class Hostile:
    """What the server answers: ``info`` for revision/info calls, ``tree`` for tree calls, ``body`` for files."""

    def __init__(self) -> None:
        self.info: bytes = b"{}"
        self.tree: bytes = b"[]"
        self.body: bytes = b""
        self.headers: dict[str, str] = {}
        self.ignore_range = False
        self.sized_bodies = True  # serve each listed file with its listed size (when small)
        self.requests = 0
        self.body_requests = 0
        self.body_limit = 40  # then 404: a client stuck in a retry loop ends (and the test sees it)


def _sized_body(h: Hostile, path: str) -> bytes:
    if not h.sized_bodies:
        return h.body
    try:
        info = json.loads(h.info)
        for sib in info.get("siblings") or []:
            size = sib.get("size")
            if isinstance(size, str) and size.isdigit():
                size = int(size)
            name = str(sib.get("rfilename"))
            if name and path.endswith("/" + name.split("/")[-1]) and isinstance(size, int) and 0 <= size <= 1 << 20:
                return (h.body * (size // max(1, len(h.body)) + 1))[:size]
    except Exception:
        pass
    return h.body


def _server(h: Hostile) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            lies = h.headers if ctype == "application/octet-stream" else {}
            for k, v in lies.items():
                self.send_header(k, v)
            if "Content-Length" not in lies:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                try:
                    self.wfile.write(body)
                except OSError:
                    pass

        def do_GET(self) -> None:
            h.requests += 1
            if "/tree/" in self.path:
                self._send(200, h.tree)
            elif self.path.startswith("/api/"):
                self._send(200, h.info)
            else:
                h.body_requests += 1
                if h.body_requests > h.body_limit:
                    return self._send(404, b'{"error": "enough"}')
                body = _sized_body(h, self.path)
                rng = self.headers.get("Range", "")
                if rng.startswith("bytes=") and not h.ignore_range:
                    start = int(rng[6:].split("-")[0] or 0)
                    if start >= len(body):
                        return self._send(416, b"")
                    return self._send(206, body[start:], "application/octet-stream")
                self._send(200, body, "application/octet-stream")

        do_HEAD = do_GET

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return srv


@pytest.fixture(scope="module")
def hostile() -> Iterator[tuple[Hostile, str]]:
    h = Hostile()
    srv = _server(h)
    try:
        yield h, f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def _sibling(name: str, size: Any, sha: Any = "b" * 64) -> dict[str, Any]:
    return {"rfilename": name, "size": size, "blobId": "c" * 40, "lfs": {"sha256": sha, "size": size}}


CASES: dict[str, tuple[Any, Any]] = {
    "traversal": ({"sha": SHA, "siblings": [_sibling("../../outside.safetensors", 4)]}, []),
    "absolute": ({"sha": SHA, "siblings": [_sibling("/tmp/batuta-hostile-abs.safetensors", 4)]}, []),
    "backslash": ({"sha": SHA, "siblings": [_sibling("..\\..\\x.safetensors", 4)]}, []),
    "git-dir": ({"sha": SHA, "siblings": [_sibling(".git/hooks/post-checkout", 4)]}, []),
    "control-char": ({"sha": SHA, "siblings": [_sibling("a\x00b.safetensors", 4)]}, []),
    "negative-size": ({"sha": SHA, "siblings": [_sibling("model.safetensors", -5)]}, []),
    "huge-size": ({"sha": SHA, "siblings": [_sibling("model.safetensors", 2**63)]}, []),
    "float-size": ({"sha": SHA, "siblings": [_sibling("model.safetensors", 1e308)]}, []),
    "string-size": ({"sha": SHA, "siblings": [_sibling("model.safetensors", "12")]}, []),
    "bad-sha256": ({"sha": SHA, "siblings": [_sibling("model.safetensors", 4, "../x")]}, []),
    "no-sha": ({"siblings": []}, []),
    "sha-not-hex": ({"sha": "../../" + "a" * 34, "siblings": []}, []),
    "siblings-not-list": ({"sha": SHA, "siblings": {"a": 1}}, []),
    "tree-traversal": ({"sha": SHA}, [{"type": "file", "path": "../../evil.json", "size": 3, "oid": "d" * 40}]),
    "tree-not-list": ({"sha": SHA}, {"path": "x"}),
    "tree-huge": ({"sha": SHA}, [{"type": "file", "path": f"../f{i}.json", "size": 4, "oid": "d" * 40} for i in range(20000)]),
    "duplicate-paths": ({"sha": SHA, "siblings": [_sibling("m.safetensors", 4), _sibling("m.safetensors", 4, "e" * 64)]}, []),
    "casefold-collision": ({"sha": SHA, "siblings": [_sibling("M.safetensors", 4), _sibling("m.safetensors", 4)]}, []),
    "deep-info": (None, []),
    "deep-tree": ({"sha": SHA}, None),
    "not-json": (b"<html>hello</html>", b"<html>"),
    "null": (None, None),
}


def _payload(obj: Any, deep_open: str) -> bytes:
    if isinstance(obj, bytes):
        return obj
    if obj is None:
        return (deep_open * 200_000).encode()
    return json.dumps(obj).encode()


def commands(tmp: Path) -> tuple[list[str], ...]:
    """The commands every malicious answer is thrown at (also used by tests/reliability/report.py)."""
    return (
        ["hf", "info", "model", "evil/repo", "--files"],
        ["hf", "pull", "model", "evil/repo", "--output", str(tmp / "out"), "--no-wait"],
        ["hf", "pull", "files", "evil/repo", "model.safetensors", "--no-wait"],
    )


def run_measured(h: Hostile, argv: list[str], env: dict[str, str], tmp: Path) -> tuple[Any, float]:
    """Run one command against the malicious Hub: (the CLI result, traced peak memory in bytes)."""
    h.body_requests = 0
    tracemalloc.start()
    try:
        res = run_cli(argv, env, tmp)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return res, peak


_ESCAPE_NAMES = ("outside.safetensors", "evil.json", "x.safetensors", "post-checkout")
_ABS_ESCAPE = Path("/tmp/batuta-hostile-abs.safetensors")


def files_outside(tmp: Path) -> list[str]:
    """Files the malicious names tried to plant outside the cache/output (must stay empty)."""
    found = [str(p) for p in tmp.rglob("*") if p.name in _ESCAPE_NAMES]
    return found + ([str(_ABS_ESCAPE)] if _ABS_ESCAPE.exists() else [])


def _run_all(h: Hostile, url: str, tmp: Path, *, allow_loop: bool = False) -> list[tuple[str, int]]:
    env = cache_env(tmp / "home", url)
    out = []
    loops = []
    for argv in commands(tmp):
        res, peak = run_measured(h, argv, env, tmp)
        assert res.error is None, f"{argv}: {type(res.error).__name__} escaped: {res.error}"
        assert "Traceback" not in res.err, res.err[-2000:]
        assert res.code == 0 or res.code in ERROR_CODES, (argv, res.code, res.err[-500:])
        assert peak < 64 << 20, f"{argv}: {peak / 2**20:.0f} MiB"
        assert res.seconds < 15, f"{argv}: {res.seconds:.1f} s"
        if h.body_requests > h.body_limit:
            loops.append(f"{' '.join(argv[:3])}: {h.body_requests} body requests (retry loop)")
        out.append((" ".join(argv[:3]), res.code))
    if not allow_loop:
        assert loops == [], loops
    return out


def _nothing_outside(tmp: Path) -> None:
    escaped = files_outside(tmp)
    assert escaped == [], escaped


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_hub_answers_are_clean_errors(case: str, hostile: tuple[Hostile, str], tmp_path: Path) -> None:
    h, url = hostile
    info, tree = CASES[case]
    h.info, h.tree = _payload(info, "["), _payload(tree, "{\"a\":")
    h.body, h.headers = b"\x00\x01\x02\x03", {}
    _run_all(h, url, tmp_path)
    _nothing_outside(tmp_path)


@pytest.mark.parametrize(
    "headers",
    [{"Content-Length": "999999999999"}, {"Content-Length": "-1"}, {"Content-Range": "bytes 0-3/2"},
     {"Retry-After": "99999999"}, {"ETag": '"../../x"'}],
    ids=["content-length-huge", "content-length-negative", "content-range-lie", "retry-after-huge", "etag-traversal"],
)
def test_hostile_headers_on_file_bodies(headers: dict[str, str], hostile: tuple[Hostile, str], tmp_path: Path) -> None:
    h, url = hostile
    h.info = json.dumps({"sha": SHA, "siblings": [_sibling("model.safetensors", 4)]}).encode()
    h.body, h.headers = b"\x00\x01\x02\x03", headers
    try:
        _run_all(h, url, tmp_path)
    finally:
        h.headers = {}
    _nothing_outside(tmp_path)


@settings(
    max_examples=300 if full_mode() else 12,
    deadline=None,
    derandomize=not full_mode(),
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(info=S.mutated_json(S.HUB_INFO), tree=S.mutated_json(S.HUB_TREE))
def test_hostile_hub_json_fuzzed(info: Any, tree: Any, hostile: tuple[Hostile, str], tmp_path: Path) -> None:
    h, url = hostile
    h.info, h.tree = json.dumps(info).encode(), json.dumps(tree).encode()
    h.body, h.headers = b"\x00\x01\x02\x03", {}
    work = tmp_path / f"ex-{time.monotonic_ns()}"
    work.mkdir()
    _run_all(h, url, work)
    _nothing_outside(work)



# Was (found here): a dropped body that made progress reset the downloader's failure counter and a
# 200/416 answer to the resume request restarted from 0, so a server that keeps sending a short body
# made the download loop forever.  Fixed in hub/download.py (4136df6); this is the regression test.



@pytest.mark.parametrize("ignore_range", [True, False], ids=["ignores-range", "honours-range"])
def test_short_body_does_not_loop_forever(ignore_range: bool, hostile: tuple[Hostile, str], tmp_path: Path) -> None:
    """A server that always sends 4 bytes of an 8-byte file (with or without honouring Range)."""
    h, url = hostile
    h.info = json.dumps({"sha": SHA, "siblings": [_sibling("model.safetensors", 8)]}).encode()
    h.tree, h.body, h.headers, h.ignore_range, h.sized_bodies = b"[]", b"\x00\x01\x02\x03", {}, ignore_range, False
    try:
        _run_all(h, url, tmp_path)
    finally:
        h.ignore_range, h.sized_bodies = False, True
