"""`batuta hf search | info | tree | login | logout | whoami` end to end against the local Hub."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from batuta_sync.server import HubServer
from tests._builders import run_cli as run
from tests.hub.conftest import ALICE, BOB, settled

DATA = Path(__file__).parent / "data"


def tsv(out: str) -> list[list[str]]:
    return [line.split("\t") for line in out.splitlines()]


# ---------------------------------------------------------------- tree


def test_tree_is_the_spec_drawing(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "hf", "tree")
    assert code == 0 and out == (DATA / "tree_ecosystem.txt").read_text(encoding="utf-8")
    code, out, _ = run(capsys, "hf", "tree", "--integration")
    assert code == 0 and out == (DATA / "tree_integration.txt").read_text(encoding="utf-8")


def test_tree_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "hf", "tree", "--json")
    doc = json.loads(out)
    assert (
        code == 0 and len(doc["categories"]) == 8 and doc["categories"][0]["children"][0]["name"] == "models"
    )
    code, out, _ = run(capsys, "hf", "tree", "--integration", "--json")
    doc = json.loads(out)
    assert [s["name"] for s in doc["sections"]][:2] == ["FORMATS", "HUB ACCESS"]
    assert doc["sections"][0]["rows"][0] == {
        "paiml": "realizar/gguf",
        "hf": "gguf (llama.cpp)",
        "integration": "✓ COMPATIBLE (parse)",
    }


def test_tree_is_data_driven(tmp_path: Path) -> None:
    from batuta_sync import tree

    data = json.loads(tree.DATA_FILE.read_text(encoding="utf-8"))
    data["ecosystem"]["categories"] = data["ecosystem"]["categories"][:1]
    data["integration"]["sections"] = data["integration"]["sections"][:1]
    assert tree.render_ecosystem(data).startswith(
        "HuggingFace Ecosystem (1 categories)\n└── hub\n    ├── models"
    )
    text = tree.render_integration(data)
    assert sum(line.startswith("├") for line in text.splitlines()) == 2 and "HUB ACCESS" not in text


# ---------------------------------------------------------------- search


def test_search_models_table_and_flags(seeded: HubServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "hf", "search", "models", "llama", "--task", "text-generation", "--library", "transformers"
    )
    rows = tsv(out)
    assert code == 0 and rows[0] == ["ID", "TASK", "LIBRARY", "DOWNLOADS", "LIKES", "UPDATED"]
    assert (
        rows[1][:5] == ["acme/tiny-llama", "text-generation", "transformers", "500", "7"] and len(rows) == 2
    )
    code, out, _ = run(capsys, "hf", "search", "models", "--author", "zed")
    assert [r[0] for r in tsv(out)[1:]] == ["zed/classifier"]
    code, out, _ = run(capsys, "hf", "search", "models", "llama", "--sort", "likes", "--limit", "1", "--json")
    doc = json.loads(out)
    assert (
        [m["id"] for m in doc] == ["acme/tiny-llama"] and doc[0]["likes"] == 7 and doc[0]["type"] == "model"
    )
    code, out, err = run(capsys, "hf", "search", "models", "nothing-like-this")
    assert code == 0 and tsv(out) == [["ID", "TASK", "LIBRARY", "DOWNLOADS", "LIKES", "UPDATED"]]
    assert "No models match" in err
    for bad in (["--limit", "0"], ["--sort", "stars"], ["--limit", "x"]):
        code, _, err = run(capsys, "hf", "search", "models", "q", *bad)
        assert code == 64 and err.startswith("Error [usage]")


def test_search_datasets_language_and_size(seeded: HubServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "hf", "search", "datasets", "--language", "en")
    assert code == 0 and {r[0] for r in tsv(out)[1:]} == {"acme/tiny-ds", "acme/mid-ds"}
    code, out, _ = run(capsys, "hf", "search", "datasets", "--size", ">1GB")
    rows = tsv(out)
    assert [r[0] for r in rows[1:]] == ["acme/big-ds"] and rows[1][3] == "5.0 GB" and rows[1][4] == "1M<n<10M"
    code, out, _ = run(capsys, "hf", "search", "datasets", "--size", "10K-100K", "--json")
    assert [d["id"] for d in json.loads(out)] == ["acme/mid-ds"]
    code, out, err = run(capsys, "hf", "search", "datasets", "--size", "1GB-5XB")
    assert code == 64 and out == "" and "Cannot parse the size expression '1GB-5XB'" in err
    assert settled(seeded) == 3
    code, out, err = run(capsys, "hf", "search", "datasets", "zzz")
    assert "No datasets match" in err


def test_search_spaces_sdk(seeded: HubServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "hf", "search", "spaces", "--sdk", "gradio")
    rows = tsv(out)
    assert code == 0 and rows[0] == ["ID", "SDK", "LIKES", "HARDWARE", "STATUS"]
    assert rows[1:] == [["acme/demo", "gradio", "0", "cpu-basic", "RUNNING"]]
    code, out, _ = run(capsys, "hf", "search", "spaces", "app", "--json")
    assert [s["id"] for s in json.loads(out)] == ["acme/st-app"]
    code, out, err = run(capsys, "hf", "search", "spaces", "zzz")
    assert "No spaces match" in err
    code, _, err = run(capsys, "hf", "search", "spaces", "--sdk", "flask")
    assert code == 64


def test_search_without_type_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "hf", "search")
    assert code == 64 and "models" in out and "datasets" in out


# ---------------------------------------------------------------- info


def test_info_model_every_field_and_files(seeded: HubServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "hf", "info", "model", "acme/tiny-llama")
    assert code == 0 and out.startswith("model acme/tiny-llama\n")
    for key in (
        "author:",
        "sha:",
        "pipeline_tag:",
        "library_name:",
        "tags:",
        "downloads:",
        "likes:",
        "model_index:",
        "safetensors:",
        "gguf:",
        "files:",
        "weights:",
    ):
        assert f"  {key}" in out
    assert "architecture llama" in out and "context_length 256" in out and "tiny-llama (0 results)" in out
    assert "gguf:           32 parameters, architecture llama" in out
    assert "weights:        gguf " in out and "safetensors 2.7 MB" in out and "F16" in out
    assert "model.safetensors" not in out  # no file list without --files
    code, out, _ = run(capsys, "hf", "info", "model", "acme/tiny-llama", "--files")
    assert "PATH\tSIZE\tBYTES\tSTORAGE\tHASH" in out
    line = next(r for r in tsv(out) if r[0] == "model.safetensors")
    assert line[1] == "2.7 MB" and line[3] == "lfs" and len(line[4]) == 64
    code, out, _ = run(capsys, "hf", "info", "model", "acme/tiny-llama", "--revision", "v1.0", "--json")
    doc = json.loads(out)
    assert doc["id"] == "acme/tiny-llama" and doc["num_files"] > 5 and "files" not in doc
    assert doc["gguf"]["architecture"] == "llama" and doc["weight_sizes"]["safetensors"] > 0
    code, out, _ = run(capsys, "hf", "info", "model", "acme/tiny-llama", "--files", "--json")
    assert any(f["path"] == "model.safetensors" and f["sha256"] for f in json.loads(out)["files"])


def test_info_dataset_and_space(seeded: HubServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "hf", "info", "dataset", "acme/tiny-ds")
    assert code == 0 and out.startswith("dataset acme/tiny-ds")
    assert (
        "train: 40 rows" in out
        and "test: 10 rows" in out
        and "text: string" in out
        and "languages:      en" in out
    )
    code, out, _ = run(capsys, "hf", "info", "space", "acme/demo", "--json")
    doc = json.loads(out)
    assert doc["sdk"] == "gradio" and doc["status"] == "RUNNING" and doc["hardware"] == "cpu-basic"
    code, out, _ = run(capsys, "hf", "info", "space", "acme/demo")
    assert "  sdk:            gradio" in out and "  status:         RUNNING" in out


def test_info_errors_are_one_line_with_exit_codes(
    seeded: HubServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "hf", "info", "model", "acme/missing")
    assert code == 8 and out == ""
    assert (
        err.splitlines()[0] == f"Error [repo-not-found]: model 'acme/missing' was not found on {seeded.url}."
    )
    assert err.splitlines()[1].startswith("Hint: ") and len(err.splitlines()) == 2
    code, _, err = run(capsys, "hf", "info", "model", "acme/tiny-llama", "--revision", "nope")
    assert code == 8 and err.startswith(
        "Error [revision-not-found]: Revision 'nope' of model 'acme/tiny-llama'"
    )
    code, _, err = run(capsys, "hf", "info", "dataset", "acme/tiny-llama")
    assert code == 8 and "dataset 'acme/tiny-llama'" in err
    code, _, err = run(capsys, "hf", "info", "model", "bad--id")
    assert code == 64 and "not a valid repo id" in err
    code, _, err = run(capsys, "hf", "info", "widget", "a/b")
    assert code == 64


# ---------------------------------------------------------------- rate limits, cache, offline


def test_rate_limit_flags(seeded: HubServer, capsys: pytest.CaptureFixture[str]) -> None:
    seeded.faults.configure(rate_limit=1, retry_after=None, ratelimit_reset=55)
    code, out, err = run(capsys, "hf", "search", "models", "llama", "--max-wait", "5")
    assert code == 10 and out == "" and "asks to wait 56 s" in err and "--max-wait 5" in err and "UTC" in err
    seeded.faults.configure(rate_limit=1, retry_after="30", ratelimit_reset=None)
    code, _, err = run(capsys, "hf", "info", "model", "acme/tiny-llama", "--no-wait")
    assert code == 10 and "--no-wait" in err and "Retry in 30 s" in err
    code, _, _ = run(capsys, "hf", "info", "model", "a/b", "--no-wait", "--max-wait", "3")
    assert code == 64
    seeded.faults.configure(rate_limit=1, retry_after="1", ratelimit_reset=None)
    code, out, err = run(capsys, "hf", "search", "spaces", "demo")  # waits 1 s, visibly
    assert code == 0 and "acme/demo" in out and "Hub: rate limited (429); retrying in 1 s" in err


def test_cache_and_offline(
    seeded: HubServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(capsys, "hf", "info", "model", "acme/tiny-llama")[0] == 0
    assert run(capsys, "hf", "search", "models", "llama")[0] == 0
    before = settled(seeded)
    code, out, _ = run(capsys, "hf", "info", "model", "acme/tiny-llama")
    assert code == 0 and settled(seeded) == before  # within the TTL: no request
    code, out, _ = run(capsys, "hf", "search", "models", "llama", "--offline")
    assert code == 0 and "acme/tiny-llama" in out
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out, _ = run(capsys, "hf", "info", "model", "acme/tiny-llama")
    assert code == 0 and "model acme/tiny-llama" in out
    code, out, err = run(capsys, "hf", "info", "model", "acme/llama-gguf")
    assert code == 18 and "model info for 'acme/llama-gguf'" in err and "is not in the metadata cache" in err
    code, _, err = run(capsys, "hf", "search", "datasets", "x")
    assert code == 18
    assert settled(seeded) == before


# ---------------------------------------------------------------- auth


def test_login_whoami_logout(
    auth_hub: HubServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = Path(os.environ["HF_HOME"]) / "token"
    code, out, err = run(capsys, "hf", "whoami")
    assert code == 7 and "Not logged in" in err
    wrong = "hf_wrongWRONGwrongWRONGwrongWRONGwrong99"
    code, out, err = run(capsys, "hf", "login", "--token", wrong)
    assert code == 7 and wrong not in out + err and "rejected your token" in err and not token_file.exists()
    code, out, err = run(capsys, "hf", "login", "--token", ALICE)
    assert code == 0 and "Logged in as alice (write token)." in err and ALICE not in out + err
    assert token_file.read_text() == ALICE and stat.S_IMODE(token_file.stat().st_mode) == 0o600
    code, out, err = run(capsys, "hf", "whoami")
    assert code == 0 and out.startswith("alice") and "orgs:           acme" in out and ALICE not in out + err
    assert "stored token file" in out
    code, out, _ = run(capsys, "hf", "whoami", "--json")
    doc = json.loads(out)
    assert doc["name"] == "alice" and doc["token_source"] == "file" and doc["token_role"] == "write"
    code, out, _ = run(capsys, "hf", "info", "model", "acme/secret")
    assert code == 0 and "private:        yes" in out
    code, _, err = run(capsys, "hf", "logout")
    assert code == 0 and "Logged out" in err and not token_file.exists()
    code, _, err = run(capsys, "hf", "logout")
    assert code == 0 and "Not logged in" in err
    code, _, err = run(capsys, "hf", "info", "model", "acme/secret")
    assert code == 8 and "log in first" in err
    # token on stdin, HF_TOKEN precedence note, legacy file note
    monkeypatch.setattr(sys, "stdin", io.StringIO(BOB + "\n"))
    monkeypatch.setenv("HF_TOKEN", ALICE)
    code, out, err = run(capsys, "hf", "login")
    assert code == 0 and "Logged in as bob (read token)." in err and "HF_TOKEN is set" in err
    assert token_file.read_text() == BOB
    code, out, _ = run(capsys, "hf", "whoami")
    assert out.startswith("alice") and "HF_TOKEN" in out
    legacy = Path(os.environ["HOME"]) / ".huggingface" / "token"
    legacy.parent.mkdir()
    legacy.write_text(BOB)
    code, _, err = run(capsys, "hf", "logout")
    assert "HF_TOKEN is still set" in err and "legacy token file" in err
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, _, err = run(capsys, "hf", "login")
    assert code == 64 and "stdin is empty" in err


def test_no_token_ever_printed_in_debug(auth_hub: HubServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "--debug", "hf", "whoami", "--token", "hf_zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"
    )
    assert code == 7 and "hf_zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz" not in out + err


def test_every_search_accepts_author_sort_limit(
    seeded: HubServer, capsys: pytest.CaptureFixture[str]
) -> None:
    for kind in ("models", "datasets", "spaces"):
        for sort in ("downloads", "likes", "updated", "trending"):
            argv = ("hf", "search", kind, "--author", "acme", "--sort", sort, "--limit", "1", "--json")
            code, out, _ = run(capsys, *argv)
            found = json.loads(out)
            assert code == 0 and len(found) == 1 and found[0]["id"].startswith("acme/")
            hub_sort = {"updated": "lastModified", "trending": "trendingScore"}.get(sort, sort)
            query = seeded.log.entries[-1].query
            assert f"sort={hub_sort}" in query and "author=acme" in query and "limit=1" in query
