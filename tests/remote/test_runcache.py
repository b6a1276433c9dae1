"""The run-cache of conversions: a runner that finds a conversion's memo key in the remote
downloads its (verified) outputs instead of converting.

Real CLI, our Hub on loopback, a real remote (moto S3 on loopback or file://).  The second
runner's converter is replaced by one that fails, so a conversion there would fail the apply.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import batuta_sync.convert as convert_mod
from batuta_sync.cli import main
from batuta_sync.core.lockfile import ConversionLock, read_lock
from batuta_sync.remote import open_remote
from batuta_sync.remote.cas import SharedStore, blob_key, run_key
from batuta_sync.tinymodel import write_tiny_llama


def _workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, remote: str) -> Path:
    """A runner's workspace with its own HF cache."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / f"{name}-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / f"{name}-home" / "hub"))
    ws = tmp_path / name
    ws.mkdir()
    (ws / "hf.yaml").write_text(
        f"version: 1\ndefaults:\n  remote: {remote}\nmodels:\n  tiny: {{repo: org/tiny}}\n"
        "conversions:\n  q: {from: models.tiny, to: gguf, quantization: Q8_0, output: ./out}\n")
    return ws


def _outputs(ws: Path) -> dict[str, bytes]:
    return {p.relative_to(ws / "out").as_posix(): p.read_bytes() for p in (ws / "out").rglob("*") if p.is_file()}


def _refuse(*_a: object, **_k: object) -> None:
    raise AssertionError("converted although the remote run-cache has this conversion")


@pytest.fixture
def tiny(hub_env: Any, tmp_path: Path) -> None:
    src = write_tiny_llama(tmp_path / "seed")
    hub_env.store.commit("org/tiny", {p.name: p for p in src.iterdir() if p.is_file()})


def test_a_second_runner_downloads_the_conversion_instead_of_converting(
    tiny: None, remote_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    calls: list[int] = []
    real = convert_mod.convert

    def counting(*a: Any, **k: Any) -> Any:
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(convert_mod, "convert", counting)
    ws1 = _workspace(tmp_path, monkeypatch, "r1", remote_url)
    assert main(["apply", "-f", str(ws1 / "hf.yaml"), "--auto-approve"]) == 0, capsys.readouterr().err
    assert calls == [1]
    entry = read_lock(ws1 / "hf.lock").get("conversions.q")
    assert isinstance(entry, ConversionLock)
    store = SharedStore(open_remote(remote_url))
    record = store.get_run(entry.key)
    assert record is not None and "provenance.json" not in record  # only what the converter wrote
    assert {n: r["sha256"] for n, r in record.items()} == {
        f.path: f.sha256 for f in entry.outputs if f.path != "provenance.json"}
    capsys.readouterr()

    monkeypatch.setattr(convert_mod, "convert", _refuse)
    ws2 = _workspace(tmp_path, monkeypatch, "r2", remote_url)
    code = main(["apply", "-f", str(ws2 / "hf.yaml"), "--auto-approve"])
    assert code == 0, capsys.readouterr().err
    assert calls == [1]  # no conversion on the second runner
    assert _outputs(ws2) == _outputs(ws1)  # byte-identical, provenance included
    lock2 = read_lock(ws2 / "hf.lock").get("conversions.q")
    assert lock2 == entry  # same memo key, same output digests
    assert main(["plan", "-f", str(ws2 / "hf.yaml"), "--detailed-exitcode"]) == 0


def test_a_corrupt_run_cache_blob_is_a_miss_and_the_runner_converts(
    tiny: None, remote_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    ws1 = _workspace(tmp_path, monkeypatch, "r1", remote_url)
    assert main(["apply", "-f", str(ws1 / "hf.yaml"), "--auto-approve"]) == 0, capsys.readouterr().err
    entry = read_lock(ws1 / "hf.lock").get("conversions.q")
    assert isinstance(entry, ConversionLock)
    store = SharedStore(open_remote(remote_url))
    record = store.get_run(entry.key)
    assert record is not None
    meta = next(iter(record.values()))

    store.store.delete(blob_key(meta["sha256"]))
    assert store.store.put_if_absent(blob_key(meta["sha256"]), b"\0" * meta["size"])  # right size, wrong bytes
    calls: list[int] = []
    real = convert_mod.convert
    monkeypatch.setattr(convert_mod, "convert", lambda *a, **k: calls.append(1) or real(*a, **k))
    ws2 = _workspace(tmp_path, monkeypatch, "r2", remote_url)
    assert main(["apply", "-f", str(ws2 / "hf.yaml"), "--auto-approve"]) == 0, capsys.readouterr().err
    assert calls == [1]  # the corrupt blob was a miss: converted locally
    assert _outputs(ws2) == _outputs(ws1)  # same bytes, and nothing corrupt left behind
    # a malformed run record is a miss as well
    store.store.delete(run_key(entry.key))
    assert store.store.put_if_absent(run_key(entry.key), b'{"outputs": {"../x": {"sha256": "00", "size": 1}}}')
    assert store.get_run(entry.key) is None and store.fetch_run(entry.key, tmp_path / "x") is None


def test_a_failing_run_cache_only_warns(
    tiny: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from batuta_sync.remote.store import RemoteError

    def down(*_a: object, **_k: object) -> None:
        raise RemoteError("The remote is down (test).")

    ws = _workspace(tmp_path, monkeypatch, "r1", f"file://{tmp_path / 'remote'}")
    monkeypatch.setattr(SharedStore, "fetch_run", down)
    monkeypatch.setattr(SharedStore, "share_run", down)
    assert main(["apply", "-f", str(ws / "hf.yaml"), "--auto-approve"]) == 0
    err = capsys.readouterr().err
    assert "the remote run-cache" in err and "converting locally" in err
    assert "could not share the conversion with the remote" in err
    assert _outputs(ws)  # converted and applied


def test_a_run_cache_hit_never_reads_the_source_and_the_hub_sends_no_blob(
    tiny: None, hub_env: Any, remote_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import batuta_sync.core.steps as steps_mod

    def downloads() -> int:
        return sum(1 for e in hub_env.log.entries if e.method == "GET" and "/resolve/" in e.path and e.status in (200, 206))

    ws1 = _workspace(tmp_path, monkeypatch, "r1", remote_url)
    assert main(["apply", "-f", str(ws1 / "hf.yaml"), "--auto-approve"]) == 0, capsys.readouterr().err
    first = downloads()
    assert first > 0

    def no_source(*_a: object, **_k: object) -> None:
        raise AssertionError("the convert step looked for its source on a run-cache hit")

    monkeypatch.setattr(convert_mod, "convert", _refuse)
    monkeypatch.setattr(steps_mod, "source_dir", no_source)
    ws2 = _workspace(tmp_path, monkeypatch, "r2", remote_url)
    assert main(["apply", "-f", str(ws2 / "hf.yaml"), "--auto-approve"]) == 0, capsys.readouterr().err
    assert downloads() == first  # runner 2: no source blob from the Hub (the declared pull came from the remote)
    assert _outputs(ws2) == _outputs(ws1)
