"""``fetch: on-demand``: a cache-only repo used only by conversions is not downloaded at all when
the remote run-cache has its conversions -- neither from the Hub nor from the remote.

Real CLI, our Hub on loopback (its request log), a real remote (moto S3 or file://)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import batuta_sync.convert as convert_mod
from batuta_sync.cli import main
from batuta_sync.core.lockfile import read_lock
from batuta_sync.remote.cas import SharedStore
from batuta_sync.tinymodel import write_tiny_llama

YAML = (
    "version: 1\ndefaults:\n  remote: {remote}\nmodels:\n  tiny: {{repo: org/tiny{extra}}}\n"
    "conversions:\n  q: {{from: models.tiny, to: gguf, quantization: Q8_0, output: ./out}}\n"
)


def _workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, remote: str,
               extra: str = ", fetch: on-demand") -> Path:
    monkeypatch.setenv("HF_HOME", str(tmp_path / f"{name}-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / f"{name}-home" / "hub"))
    ws = tmp_path / name
    ws.mkdir()
    (ws / "hf.yaml").write_text(YAML.format(remote=remote, extra=extra))
    return ws


def _outputs(ws: Path) -> dict[str, bytes]:
    return {p.relative_to(ws / "out").as_posix(): p.read_bytes() for p in (ws / "out").rglob("*") if p.is_file()}


def _downloads(hub: Any) -> int:
    return sum(1 for e in hub.log.entries if e.method == "GET" and "/resolve/" in e.path and e.status in (200, 206))


def _refuse(*_a: object, **_k: object) -> None:
    raise AssertionError("converted although the remote run-cache has this conversion")


@pytest.fixture
def tiny(hub_env: Any, tmp_path: Path) -> None:
    src = write_tiny_llama(tmp_path / "seed")
    hub_env.store.commit("org/tiny", {p.name: p for p in src.iterdir() if p.is_file()})


def test_a_run_cache_hit_skips_the_download_of_an_on_demand_source(
    tiny: None, hub_env: Any, remote_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ws1 = _workspace(tmp_path, monkeypatch, "r1", remote_url)
    assert main(["apply", "-f", str(ws1 / "hf.yaml"), "--auto-approve"]) == 0, capsys.readouterr().err
    first = _downloads(hub_env)
    assert first > 0  # runner 1: the run-cache was cold, so it pulled and converted

    fetched: list[str] = []
    real_fetch = SharedStore.fetch_blob

    def counting(self: SharedStore, digest: str, dest: Path, **k: Any) -> Any:
        fetched.append(digest)
        return real_fetch(self, digest, dest, **k)

    monkeypatch.setattr(SharedStore, "fetch_blob", counting)
    monkeypatch.setattr(convert_mod, "convert", _refuse)
    ws2 = _workspace(tmp_path, monkeypatch, "r2", remote_url)
    capsys.readouterr()
    assert main(["apply", "-f", str(ws2 / "hf.yaml"), "--auto-approve"]) == 0, capsys.readouterr().err
    assert "not downloaded: the remote run-cache has its conversions" in capsys.readouterr().err
    assert _downloads(hub_env) == first  # nothing from the Hub
    conv = read_lock(ws2 / "hf.lock").get("conversions.q")
    assert conv is not None
    assert sorted(fetched) == sorted(f.sha256 for f in conv.outputs if f.path != "provenance.json")  # type: ignore[attr-defined]
    assert not list((tmp_path / "r2-home" / "hub").glob("models--org--tiny/snapshots/*/*"))  # source never fetched
    assert _outputs(ws2) == _outputs(ws1)
    assert read_lock(ws2 / "hf.lock").entries == read_lock(ws1 / "hf.lock").entries
    # converged: the missing source is wanted only to convert, and the conversion is up to date
    assert main(["plan", "-f", str(ws2 / "hf.yaml"), "--detailed-exitcode"]) == 0, capsys.readouterr().out

    # the output goes away: the conversion is due again, and again comes from the run-cache
    for p in (ws2 / "out").iterdir():
        p.unlink()
    assert main(["apply", "-f", str(ws2 / "hf.yaml"), "--auto-approve"]) == 0, capsys.readouterr().err
    assert _outputs(ws2) == _outputs(ws1) and _downloads(hub_env) == first


def test_a_run_cache_that_misses_after_the_skip_pulls_the_source_and_converts(
    tiny: None, hub_env: Any, remote_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ws1 = _workspace(tmp_path, monkeypatch, "r1", remote_url)
    assert main(["apply", "-f", str(ws1 / "hf.yaml"), "--auto-approve"]) == 0, capsys.readouterr().err
    # the record is there when the pull looks, but its fetch misses (as after a gc or a corrupt blob)
    monkeypatch.setattr(SharedStore, "fetch_run", lambda *_a, **_k: None)
    ws2 = _workspace(tmp_path, monkeypatch, "r2", remote_url)
    assert main(["apply", "-f", str(ws2 / "hf.yaml"), "--auto-approve"]) == 0, capsys.readouterr().err
    assert list((tmp_path / "r2-home" / "hub").glob("models--org--tiny/snapshots/*/config.json"))  # pulled after all
    assert _outputs(ws2) == _outputs(ws1)  # converted locally, same bytes
    assert main(["plan", "-f", str(ws2 / "hf.yaml"), "--detailed-exitcode"]) == 0


def test_without_on_demand_the_source_is_still_pulled(
    tiny: None, remote_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    ws1 = _workspace(tmp_path, monkeypatch, "r1", remote_url, extra="")
    assert main(["apply", "-f", str(ws1 / "hf.yaml"), "--auto-approve"]) == 0, capsys.readouterr().err
    ws2 = _workspace(tmp_path, monkeypatch, "r2", remote_url, extra="")
    monkeypatch.setattr(convert_mod, "convert", _refuse)
    assert main(["apply", "-f", str(ws2 / "hf.yaml"), "--auto-approve"]) == 0, capsys.readouterr().err
    assert list((tmp_path / "r2-home" / "hub").glob("models--org--tiny/snapshots/*/config.json"))  # declared: it stays


@pytest.mark.parametrize(
    ("models", "publish", "message"),
    [
        ("tiny: {repo: org/tiny, fetch: on-demand, output: ./m}\n", "", "for cache-only repos"),
        ("tiny: {repo: org/tiny, fetch: on-demand}\n", "publish:\n  p: {from: models.tiny, repo: me/x}\n",
         "every user of this repo to be a conversion"),
        ("tiny: {repo: org/tiny, fetch: on-demand}\n  other: {repo: org/other, fetch: on-demand}\n", "",
         "every user of this repo to be a conversion"),
        ("tiny: {repo: org/tiny, fetch: later}\n", "", "fetch"),
    ],
)
def test_on_demand_is_refused_where_it_cannot_hold(
    models: str, publish: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "hf.yaml").write_text(
        f"version: 1\nmodels:\n  {models}conversions:\n  q: {{from: models.tiny, to: gguf, quantization: Q8_0}}\n{publish}")
    assert main(["validate", "-f", str(tmp_path / "hf.yaml")]) != 0
    assert message in capsys.readouterr().err
