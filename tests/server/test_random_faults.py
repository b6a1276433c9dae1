"""The server's random fault mode (``fault_rate``/``fault_seed``/``fault_kinds``/``only``): every kind
observed with httpx, the real huggingface_hub client and our pull engine; counts add up; a seed
gives the same faults; the admin endpoint and ``batuta hub serve --fault-rate/--fault-seed``."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx2 as httpx  # the one HTTP client library (huggingface_hub installs it)
import pytest
from huggingface_hub import HfApi, hf_hub_download

from batuta_sync.server import HubServer
from batuta_sync.server.state import FAULT_KINDS, BodyFault, FaultDraw, Faults
from tests.server._serve import free_port, serve_and_probe

DATA = bytes(range(256)) * 160  # 40 KiB, an LFS file (.bin)
FILES = {f"w{i}.parquet": hashlib.sha256(b"%d" % i).digest() * 1024 + DATA for i in range(6)}
FILES["c.txt"] = b"config " * 500  # a regular (git) file, served from /resolve/


@pytest.fixture
def seeded(hub_server: HubServer) -> HubServer:
    hub_server.control_api = True  # these tests drive /_batuta/ over HTTP (off by default)
    hub_server.store.commit("local/f", FILES)
    hub_server.log.clear()
    return hub_server


def _lfs_url(srv: HubServer, name: str) -> str:
    entry = srv.store.commit_of("local/f").files[name]
    sha = srv.store.resolve("local/f", "main")
    return f"{srv.url}/cdn-lfs/model/local/f/resolve/{sha}/{entry.sha256}"


def _get(client: httpx.Client, url: str) -> tuple[int, bytes, int, dict[str, str]]:
    """(status, bytes received, announced length, headers); a body cut short is not an error here."""
    got = b""
    with client.stream("GET", url) as r:
        try:
            for chunk in r.iter_raw():
                got += chunk
        except httpx.HTTPError:
            pass
        return r.status_code, got, int(r.headers.get("Content-Length", -1)), dict(r.headers)


def _only(srv: HubServer, kind: str, **more: Any) -> None:
    srv.faults.configure(fault_rate=1.0, fault_seed=1, fault_kinds={kind: 1}, **more)


# --------------------------------------------------------------------------- each kind, with httpx


def test_drop_cuts_the_body_at_a_random_offset_and_closes(seeded: HubServer) -> None:
    _only(seeded, "drop")
    cuts = []
    with httpx.Client() as c:
        for _ in range(5):
            status, got, length, _h = _get(c, _lfs_url(seeded, "w1.parquet"))
            assert status == 200 and length == len(FILES["w1.parquet"]) and len(got) < length
            assert got == FILES["w1.parquet"][: len(got)]  # a clean cut: the prefix is right
            cuts.append(len(got))
    assert len(set(cuts)) > 1  # random offsets
    assert seeded.faults.counts["drop"] == 5 and seeded.faults.injected == 5
    assert [e.bytes_out for e in seeded.log.entries] == cuts  # the log has what was really sent


def test_truncate_cuts_1_to_64_bytes_before_the_end(seeded: HubServer) -> None:
    _only(seeded, "truncate")
    with httpx.Client() as c:
        for name in ("w2.parquet", "c.txt"):
            for _ in range(3):
                url = (
                    f"{seeded.url}/local/f/resolve/main/c.txt" if name == "c.txt" else _lfs_url(seeded, name)
                )
                _s, got, length, _h = _get(c, url)
                assert 1 <= length - len(got) <= 64
                assert got == FILES[name][: len(got)]
    assert seeded.faults.counts["truncate"] == 6


def test_corrupt_flips_exactly_one_byte_and_keeps_the_size(seeded: HubServer) -> None:
    _only(seeded, "corrupt")
    with httpx.Client() as c:
        _s, got, length, _h = _get(c, _lfs_url(seeded, "w3.parquet"))
    want = FILES["w3.parquet"]
    assert len(got) == length == len(want)
    assert sum(a != b for a, b in zip(got, want, strict=True)) == 1
    assert seeded.faults.counts["corrupt"] == 1


def test_429_carries_retry_after_and_5xx_statuses_vary(seeded: HubServer) -> None:
    _only(seeded, "429", retry_after="2")
    r = httpx.get(f"{seeded.url}/api/models/local/f")
    assert r.status_code == 429 and r.headers["Retry-After"] == "2" and r.json()["error"]
    r = httpx.get(_lfs_url(seeded, "w0.parquet"))  # downloads get 429s too
    assert r.status_code == 429
    _only(seeded, "5xx")
    statuses = {httpx.get(f"{seeded.url}/api/models/local/f/revision/main").status_code for _ in range(30)}
    assert statuses <= {500, 502, 503, 504} and len(statuses) >= 3
    assert seeded.faults.counts["429"] == 2 and seeded.faults.counts["5xx"] == 30


def test_api_calls_and_uploads_never_get_body_faults(seeded: HubServer) -> None:
    seeded.faults.configure(fault_rate=1.0, fault_kinds=["drop", "truncate", "corrupt"])
    api = HfApi(endpoint=seeded.url)
    assert api.model_info("local/f").sha
    assert {e.path for e in api.list_repo_tree("local/f")} >= set(FILES)
    r = httpx.head(f"{seeded.url}/local/f/resolve/main/w0.parquet")  # a redirect, not a body
    assert r.status_code == 302
    api.upload_file(path_or_fileobj=b"new", path_in_repo="n.txt", repo_id="local/f")
    assert seeded.faults.injected == 0
    seeded.faults.configure(fault_kinds="429,5xx")  # uploads may get 429/5xx
    r = httpx.post(f"{seeded.url}/api/models/local/f/preupload/main", json={"files": []})
    assert r.status_code == 429 or r.status_code >= 500
    assert seeded.faults.counts["429"] + seeded.faults.counts["5xx"] == 1


def test_only_restricts_random_faults_to_matching_paths(seeded: HubServer) -> None:
    seeded.faults.configure(fault_rate=1.0, fault_kinds={"5xx": 1}, only=r"^/cdn-lfs/")
    assert httpx.get(f"{seeded.url}/api/models/local/f").status_code == 200
    assert httpx.get(f"{seeded.url}/local/f/resolve/main/c.txt").status_code == 200
    assert httpx.get(_lfs_url(seeded, "w0.parquet")).status_code >= 500
    seeded.faults.configure(only=None, path_filter="/nothing/")  # path_filter gates random mode too
    assert httpx.get(_lfs_url(seeded, "w0.parquet")).status_code == 200
    assert seeded.faults.counts["5xx"] == 1


# --------------------------------------------------------------------------- counts and determinism


def _mixed_traffic(srv: HubServer, n: int = 120) -> list[tuple[str, int, bytes, int]]:
    """(kind of url, status, body received, announced length) for n requests in a fixed order."""
    urls = {f"{srv.url}/api/models/local/f": "api", f"{srv.url}/local/f/resolve/main/c.txt": "c.txt"}
    urls.update({_lfs_url(srv, f"w{i}.parquet"): f"w{i}.parquet" for i in range(6)})
    order = list(urls)
    out = []
    with httpx.Client() as c:
        for i in range(n):
            url = order[i % len(order)]
            status, got, length, _h = _get(c, url)
            out.append((urls[url], status, got, length))
    return out


def test_counts_add_up_to_what_clients_saw(seeded: HubServer) -> None:
    seeded.faults.configure(fault_rate=0.5, fault_seed=3, retry_after="0")
    seen = _mixed_traffic(seeded)
    counts = seeded.faults.counts
    by_status = [s for _u, s, _g, _l in seen]
    assert counts["429"] == by_status.count(429)
    assert counts["5xx"] == sum(1 for s in by_status if s >= 500)
    short = [(len(g), ln) for _u, s, g, ln in seen if s == 200 and len(g) < ln]
    assert counts["drop"] + counts["truncate"] == len(short)
    assert counts["truncate"] <= sum(1 for g, ln in short if ln - g <= 64)
    files = [(u, g) for u, s, g, ln in seen if s == 200 and len(g) == ln and u != "api"]
    assert counts["corrupt"] == sum(1 for u, g in files if g != FILES[u])
    assert all(counts[k] > 0 for k in FAULT_KINDS), counts
    total = sum(counts.values())
    assert seeded.faults.injected == total == seeded.counters["faults_injected"]
    assert 0.35 < total / len(seen) < 0.65  # about fault_rate of the requests
    state = httpx.get(f"{seeded.url}/_batuta/faults").json()
    assert state["injected"] == counts and state["injected_total"] == total
    assert state["faults"]["fault_rate"] == 0.5 and state["faults"]["fault_seed"] == 3
    cleared = httpx.delete(f"{seeded.url}/_batuta/faults/counts").json()
    assert cleared["injected_total"] == 0 and seeded.faults.injected == 0


def test_a_seed_gives_the_same_faults(seeded: HubServer, tmp_path: Path) -> None:
    other = HubServer(root=tmp_path / "other").start()
    try:
        other.store.commit("local/f", FILES)
        runs = []
        for srv, seed in ((seeded, 9), (other, 9), (seeded, 10)):
            srv.faults.configure(fault_rate=0.4, fault_seed=seed)
            srv.faults.clear_counts()
            seen = _mixed_traffic(srv, 64)
            runs.append(([(s, len(g), u == "api" or g) for u, s, g, _l in seen], srv.faults.counts))
        assert runs[0] == runs[1]
        assert runs[0][0] != runs[2][0]
    finally:
        other.stop()


def test_faults_object_validates_and_resets(monkeypatch: pytest.MonkeyPatch) -> None:
    from batuta_sync.server import state

    f = Faults()
    for bad in (
        {"fault_rate": 1.5},
        {"fault_kinds": {"bogus": 1}},
        {"fault_kinds": {"drop": -1}},
        {"fault_kinds": {"drop": "x"}},
        {"fault_kinds": {"drop": 0}},
        {"fault_kinds": 3},
        {"only": "("},
    ):
        with pytest.raises(ValueError):
            f.configure(**bad)
    f.configure(fault_rate=0.25, fault_seed=None, fault_kinds=None, only=None)
    snap = f.snapshot()
    assert snap["fault_seed"] == 0 and snap["fault_kinds"]["drop"] == 0.30 and snap["only"] is None
    assert f.take_body_fault(0, FaultDraw("truncate", 0.5)) is None  # nothing to cut
    assert f.take_body_fault(1, FaultDraw("truncate", 0.5)) is None
    assert f.take_body_fault(0, FaultDraw("drop", 0.5)) is None
    assert f.take_body_fault(10, FaultDraw("429", 0.5)) is None
    assert f.take_body_fault(100, FaultDraw("truncate", 0.99)) == BodyFault(100 - 64)
    assert f.take_body_fault(100, FaultDraw("corrupt", 0.5)) == BodyFault(100, 50)
    assert FaultDraw("5xx", 0.99).status == 504 and FaultDraw("5xx", 0.0).status == 500
    f.configure(drop_after_bytes=500, drop_count=1)
    assert f.take_body_fault(100) is None  # a drop past the end cuts nothing
    assert f.counts["drop"] == 0
    monkeypatch.setattr(state, "_MAX_SEEN", 2)  # a long-running server forgets old paths, keeps drawing
    f.configure(fault_rate=1.0, fault_kinds={"5xx": 1})
    assert all(f.draw("GET", f"/p{i}", body=False) for i in range(5))
    f.reset()
    assert f.snapshot()["fault_rate"] == 0.0 and f.draw("GET", "/x", body=True) is None


# --------------------------------------------------------------------------- real clients recover


def test_hash_check_of_the_pull_engine_catches_corrupt_bodies(
    seeded: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from batuta_sync.pull import PullRequest, pull
    from batuta_sync.settings import resolve_settings
    from batuta_sync.types import HfAssetType, RepoRef

    monkeypatch.setenv("BATUTA_RETRY_BACKOFF", "0.01")
    seeded.faults.configure(fault_rate=0.3, fault_seed=4, fault_kinds={"corrupt": 1})
    cache = tmp_path / "cache"
    settings = resolve_settings(
        env={"HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(cache), "HF_ENDPOINT": seeded.url}
    )
    res = pull(settings, PullRequest(RepoRef("local/f", HfAssetType.MODEL), files=tuple(FILES)), jobs=4)
    for name, data in FILES.items():
        assert (res.snapshot_dir / name).read_bytes() == data
    assert seeded.faults.counts["corrupt"] >= 1
    bodies = [
        e for e in seeded.log.entries if e.method == "GET" and e.status == 200 and "/api/" not in e.path
    ]
    assert len(bodies) == len(FILES) + seeded.faults.counts["corrupt"]  # each corrupt body fetched again
    for blob in cache.glob("*/blobs/*"):
        data = blob.read_bytes()
        assert blob.name in (hashlib.sha256(data).hexdigest(), _git_sha1(data))


def test_pull_engine_converges_under_every_kind(
    seeded: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from batuta_sync.pull import PullRequest, pull
    from batuta_sync.settings import resolve_settings
    from batuta_sync.types import HfAssetType, RepoRef

    monkeypatch.setenv("BATUTA_RETRY_BACKOFF", "0.01")
    seeded.faults.configure(fault_rate=0.3, fault_seed=2, retry_after="0")
    settings = resolve_settings(
        env={
            "HF_HOME": str(tmp_path / "hf"),
            "HF_HUB_CACHE": str(tmp_path / "cache"),
            "HF_ENDPOINT": seeded.url,
        }
    )
    res = pull(settings, PullRequest(RepoRef("local/f", HfAssetType.MODEL), files=tuple(FILES)), jobs=4)
    assert {n: (res.snapshot_dir / n).read_bytes() for n in FILES} == FILES
    assert seeded.faults.injected >= 1


def test_huggingface_hub_client_retries_random_faults(seeded: HubServer, tmp_path: Path) -> None:
    seeded.faults.configure(
        fault_rate=0.5, fault_seed=5, fault_kinds={"drop": 1, "429": 1}, retry_after="0", only="/cdn-lfs/"
    )
    got = Path(
        hf_hub_download("local/f", "w5.parquet", endpoint=seeded.url, cache_dir=tmp_path / "c")
    ).read_bytes()
    assert got == FILES["w5.parquet"]
    assert seeded.faults.injected >= 1


def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


# --------------------------------------------------------------------------- admin endpoint and CLI


def test_admin_endpoint_configures_random_mode(seeded: HubServer) -> None:
    base = seeded.url
    r = httpx.post(
        f"{base}/_batuta/faults", json={"fault_rate": 1, "fault_seed": 7, "fault_kinds": {"5xx": 1}}
    )
    assert r.status_code == 200 and r.json()["faults"]["fault_kinds"] == {"5xx": 1.0}
    assert httpx.get(f"{base}/api/models/local/f").status_code >= 500
    assert httpx.get(f"{base}/_batuta/faults").json()["injected"]["5xx"] == 1
    for bad in ({"fault_rate": -0.1}, {"fault_kinds": {"nope": 1}}, {"only": "["}):
        assert httpx.post(f"{base}/_batuta/faults", json=bad).status_code == 400
    assert httpx.delete(f"{base}/_batuta/faults").json()["faults"]["fault_rate"] == 0.0
    assert httpx.get(f"{base}/api/models/local/f").status_code == 200
    assert httpx.get(f"{base}/_batuta/faults").json()["injected_total"] == 1  # counts survive a reset


def test_hub_serve_fault_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from batuta_sync.cli import main

    seen: dict[str, Any] = {}

    def probe(base: str) -> None:
        seen["faults"] = httpx.get(f"{base}/_batuta/faults").json()["faults"]

    rc = serve_and_probe(
        tmp_path / "r", free_port(), ["--fault-rate", "0.3", "--fault-seed", "7", "--control-api"], probe
    )
    assert rc == 0
    assert seen["faults"]["fault_rate"] == 0.3 and seen["faults"]["fault_seed"] == 7
    assert "random faults" in capsys.readouterr().out
    for bad in ("1.5", "-1"):
        assert main(["hub", "serve", "--root", str(tmp_path / "r"), "--fault-rate", bad]) == 64
