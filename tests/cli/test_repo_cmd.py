"""`batuta hf repo create|delete|branch|tag|ls` and `batuta hf ls` against the local Hub.

Every effect is read back with the real ``huggingface_hub`` client.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from batuta_sync.cli import main
from batuta_sync.server import HubServer
from tests._builders import hub_on_env
from tests._builders import run_cli as run
from tests.hub.conftest import ALICE, BOB, start_auth_hub


def one_paragraph(err: str, code_name: str) -> None:
    lines = err.strip().splitlines()
    assert lines[0].startswith(f"Error [{code_name}]:") and len(lines) == 2 and lines[1].startswith("Hint: ")
    assert "Traceback" not in err


def api(srv: HubServer, token: str | None = None) -> object:
    from huggingface_hub import HfApi

    return HfApi(endpoint=srv.url, token=token or False)


@pytest.fixture
def auth_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    srv = start_auth_hub(tmp_path / "auth-root")
    with hub_on_env(srv, monkeypatch):
        yield srv


# ---------------------------------------------------------------- create / delete


def test_create_private_repo_then_exists_is_19_unless_exist_ok(
    hub_env: HubServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "hf", "repo", "create", "acme/new-model", "--private")
    assert code == 0 and out.strip() == f"{hub_env.url}/acme/new-model"
    assert "Created model repo acme/new-model (private)" in err
    info = api(hub_env).model_info("acme/new-model")  # type: ignore[attr-defined]
    assert info.private is True

    code, _, err = run(capsys, "hf", "repo", "create", "acme/new-model")
    assert code == 19
    one_paragraph(err, "repo-exists")
    assert "--exist-ok" in err

    code, out, _ = run(capsys, "hf", "repo", "create", "acme/new-model", "--exist-ok", "--json")
    assert code == 0 and json.loads(out)["created"] is False


def test_create_dataset_and_space(hub_env: HubServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "hf", "repo", "create", "acme/d", "--type", "dataset", "--json")
    assert code == 0 and json.loads(out) == {
        "created": True,
        "repo_id": "acme/d",
        "type": "dataset",
        "url": f"{hub_env.url}/datasets/acme/d",
    }
    code, _, _ = run(capsys, "hf", "repo", "create", "acme/s", "--type", "space", "--space-sdk", "gradio")
    assert code == 0
    hf = api(hub_env)
    assert hf.repo_exists("acme/d", repo_type="dataset")  # type: ignore[attr-defined]
    assert not hf.repo_exists("acme/d")  # type: ignore[attr-defined]
    assert hf.space_info("acme/s").sdk == "gradio"  # type: ignore[attr-defined]


def test_create_a_bare_name_lands_under_the_user(
    auth_hub: HubServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", ALICE)
    code, out, _ = run(capsys, "hf", "repo", "create", "solo", "--json")
    assert code == 0 and json.loads(out)["repo_id"] == "alice/solo"
    assert json.loads(out)["url"] == f"{auth_hub.url}/alice/solo"
    assert api(auth_hub, ALICE).repo_exists("alice/solo")  # type: ignore[attr-defined]


@pytest.mark.parametrize("answer", [b"not json", b'{"name": "evil/other"}', b'["x"]'])
def test_create_answer_that_does_not_name_the_repo_is_not_trusted(
    answer: bytes, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Evil(BaseHTTPRequestHandler):  # a Hub whose create answer names some other repo
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Evil)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{srv.server_address[1]}")
        code, out, _ = run(capsys, "hf", "repo", "create", "solo", "--json")
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)
    assert code == 0 and json.loads(out)["repo_id"] == "solo"


def test_delete_needs_yes_without_a_terminal(hub_env: HubServer, capsys: pytest.CaptureFixture[str]) -> None:
    hub_env.store.commit("acme/doomed", {"config.json": b"{}"})
    code, _, err = run(capsys, "hf", "repo", "delete", "acme/doomed")
    assert code == 64
    one_paragraph(err, "usage")
    assert api(hub_env).repo_exists("acme/doomed")  # type: ignore[attr-defined]

    code, _, err = run(capsys, "hf", "repo", "delete", "acme/doomed", "--yes")
    assert code == 0 and "Deleted model repo acme/doomed." in err
    assert not api(hub_env).repo_exists("acme/doomed")  # type: ignore[attr-defined]

    code, _, err = run(capsys, "hf", "repo", "delete", "acme/doomed", "--yes")
    assert code == 8
    one_paragraph(err, "repo-not-found")
    assert "model repo 'acme/doomed'" in err
    code, out, _ = run(capsys, "hf", "repo", "delete", "acme/doomed", "--yes", "--missing-ok", "--json")
    assert code == 0 and json.loads(out)["changed"] is False


def test_delete_confirmation_on_a_terminal(
    hub_env: HubServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import sys

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    hub_env.store.commit("acme/kept", {"config.json": b"{}"})
    monkeypatch.setattr(sys, "stdin", Tty("acme/wrong\n"))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    code, _, err = run(capsys, "hf", "repo", "delete", "acme/kept")
    assert code == 64 and "did not match" in err
    assert api(hub_env).repo_exists("acme/kept")  # type: ignore[attr-defined]
    monkeypatch.setattr(sys, "stdin", Tty("acme/kept\n"))
    code, _, _ = run(capsys, "hf", "repo", "delete", "acme/kept")
    assert code == 0 and not api(hub_env).repo_exists("acme/kept")  # type: ignore[attr-defined]


def test_permissions_read_role_and_anonymous_are_7(
    auth_hub: HubServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", BOB)  # read role, not a member of acme
    code, _, err = run(capsys, "hf", "repo", "delete", "acme/public", "--yes")
    assert code == 7
    one_paragraph(err, "forbidden")
    assert BOB not in err
    code, _, err = run(capsys, "hf", "repo", "create", "acme/bobs")
    assert code == 7 and "model repo 'acme/bobs'" in err
    code, _, _ = run(capsys, "hf", "repo", "tag", "create", "acme/public", "v9")
    assert code == 7
    monkeypatch.delenv("HF_TOKEN")
    code, _, err = run(capsys, "hf", "repo", "create", "acme/anon")
    assert code == 7 and "Traceback" not in err
    # a private repo is invisible (not found) to who cannot read it, so it cannot be probed
    monkeypatch.setenv("HF_TOKEN", BOB)
    code, _, _ = run(capsys, "hf", "repo", "delete", "acme/secret", "--yes")
    assert code == 8
    hf = api(auth_hub, ALICE)
    assert hf.repo_exists("acme/public") and hf.repo_exists("acme/secret")  # type: ignore[attr-defined]
    assert not hf.repo_exists("acme/bobs")  # type: ignore[attr-defined]
    # the member with write access may delete
    monkeypatch.setenv("HF_TOKEN", ALICE)
    code, _, _ = run(capsys, "hf", "repo", "delete", "acme/public", "--yes")
    assert code == 0 and not hf.repo_exists("acme/public")  # type: ignore[attr-defined]


# ---------------------------------------------------------------- branches and tags


def test_branch_create_at_revision_and_delete(hub_env: HubServer, capsys: pytest.CaptureFixture[str]) -> None:
    first = hub_env.store.commit("acme/m", {"a.txt": b"1"})
    second = hub_env.store.commit("acme/m", {"a.txt": b"2"})
    code, _, err = run(capsys, "hf", "repo", "branch", "create", "acme/m", "dev", "--revision", first)
    assert code == 0 and f"at {first}" in err
    code, _, _ = run(capsys, "hf", "repo", "branch", "create", "acme/m", "head")
    assert code == 0
    refs = api(hub_env).list_repo_refs("acme/m")  # type: ignore[attr-defined]
    branches = {b.name: b.target_commit for b in refs.branches}
    assert branches == {"main": second, "dev": first, "head": second}

    code, _, err = run(capsys, "hf", "repo", "branch", "create", "acme/m", "dev")
    assert code == 19
    one_paragraph(err, "ref-exists")
    code, out, _ = run(capsys, "hf", "repo", "branch", "create", "acme/m", "dev", "--exist-ok", "--json")
    assert code == 0 and json.loads(out)["changed"] is False

    code, _, _ = run(capsys, "hf", "repo", "branch", "delete", "acme/m", "dev")
    assert code == 0
    refs = api(hub_env).list_repo_refs("acme/m")  # type: ignore[attr-defined]
    assert {b.name for b in refs.branches} == {"main", "head"}
    code, _, err = run(capsys, "hf", "repo", "branch", "delete", "acme/m", "dev")
    assert code == 8
    one_paragraph(err, "revision-not-found")
    code, _, _ = run(capsys, "hf", "repo", "branch", "delete", "acme/m", "dev", "--missing-ok")
    assert code == 0
    # a missing repo is not a missing branch: --missing-ok does not hide it
    code, _, err = run(capsys, "hf", "repo", "branch", "delete", "acme/nope", "dev", "--missing-ok")
    assert code == 8 and "repo-not-found" in err
    code, _, err = run(capsys, "hf", "repo", "branch", "create", "acme/nope", "dev")
    assert code == 8
    one_paragraph(err, "repo-not-found")


def test_tag_create_with_message_at_revision_and_delete(
    hub_env: HubServer, capsys: pytest.CaptureFixture[str]
) -> None:
    first = hub_env.store.commit("acme/m", {"a.txt": b"1"})
    hub_env.store.commit("acme/m", {"a.txt": b"2"})
    hub_env.log.clear()
    code, _, _ = run(capsys, "hf", "repo", "tag", "create", "acme/m", "v1.0", "--revision", first, "-m", "first")
    assert code == 0
    refs = api(hub_env).list_repo_refs("acme/m")  # type: ignore[attr-defined]
    assert {t.name: t.target_commit for t in refs.tags} == {"v1.0": first}

    code, out, _ = run(capsys, "hf", "repo", "tag", "list", "acme/m", "--json")
    assert code == 0 and json.loads(out) == [{"commit": first, "name": "v1.0"}]
    code, out, _ = run(capsys, "hf", "repo", "tag", "list", "acme/m")
    assert code == 0 and out.splitlines() == ["TAG\tCOMMIT", f"v1.0\t{first}"]
    code, _, err = run(capsys, "hf", "repo", "tag", "create", "acme/m", "v1.0")
    assert code == 19
    one_paragraph(err, "ref-exists")
    code, _, _ = run(capsys, "hf", "repo", "tag", "create", "acme/m", "v1.0", "--exist-ok")
    assert code == 0
    code, _, _ = run(capsys, "hf", "repo", "tag", "delete", "acme/m", "v1.0")
    assert code == 0
    assert api(hub_env).list_repo_refs("acme/m").tags == []  # type: ignore[attr-defined]
    code, _, _ = run(capsys, "hf", "repo", "tag", "delete", "acme/m", "v1.0")
    assert code == 8
    code, out, _ = run(capsys, "hf", "repo", "tag", "delete", "acme/m", "v1.0", "--missing-ok", "--json")
    assert code == 0 and json.loads(out)["changed"] is False
    code, out, err = run(capsys, "hf", "repo", "tag", "list", "acme/m")
    assert code == 0 and out.splitlines() == ["TAG\tCOMMIT"] and "acme/m has no tags." in err


@pytest.mark.parametrize("bad", ["../x", "a..b", "bad name", "x.lock"])
def test_bad_ref_names_are_usage_errors_before_any_request(
    hub_env: HubServer, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    hub_env.store.commit("acme/m", {"a.txt": b"1"})
    hub_env.log.clear()
    code, _, err = run(capsys, "hf", "repo", "tag", "create", "acme/m", bad)
    assert code == 64
    one_paragraph(err, "usage")
    code, _, _ = run(capsys, "hf", "repo", "branch", "create", "acme/m", "ok", "--revision", bad)
    assert code == 64
    assert hub_env.log.count() == 0


# ---------------------------------------------------------------- listings


def test_repo_ls_by_author_type_and_visibility(
    auth_hub: HubServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    auth_hub.store.commit("acme/ds", {"x.csv": b"a\n"}, repo_type="dataset")
    auth_hub.store.commit("alice/own", {"x": b"1"})
    monkeypatch.setenv("HF_TOKEN", ALICE)
    code, out, _ = run(capsys, "hf", "repo", "ls", "acme", "--json")
    assert code == 0
    assert sorted(r["id"] for r in json.loads(out)) == ["acme/public", "acme/secret"]
    code, out, _ = run(capsys, "hf", "repo", "ls", "acme", "--type", "dataset")
    assert code == 0 and [r[0] for r in (line.split("\t") for line in out.splitlines()[1:])] == ["acme/ds"]
    monkeypatch.setenv("HF_TOKEN", BOB)  # not a member: the private repo is not listed
    code, out, _ = run(capsys, "hf", "repo", "ls", "acme", "--json")
    assert code == 0 and [r["id"] for r in json.loads(out)] == ["acme/public"]
    code, out, err = run(capsys, "hf", "repo", "ls", "nobody")
    assert code == 0 and "nobody has no model repos" in err
    code, _, err = run(capsys, "hf", "repo", "ls", "acme/public")
    assert code == 64


def test_ls_lists_files_sizes_and_lfs_sha256(hub_env: HubServer, capsys: pytest.CaptureFixture[str]) -> None:
    weights = b"\x00" * 4096
    sha = hub_env.store.commit(
        "acme/m",
        {"config.json": b"{}", "model.safetensors": weights, "sub/deep/w.safetensors": b"\x01" * 10, "sub/r.txt": b"r"},
    )
    hub_env.store.create_tag("acme/m", "v1", rev=sha)
    hub_env.store.commit("acme/m", {"late.txt": b"late"})

    code, out, _ = run(capsys, "hf", "ls", "acme/m", "--revision", "v1", "--json")
    assert code == 0
    top = json.loads(out)
    assert [e["path"] for e in top] == ["sub", "config.json", "model.safetensors"]
    st = next(e for e in top if e["path"] == "model.safetensors")
    assert st["size"] == 4096 and st["lfs_sha256"] == hashlib.sha256(weights).hexdigest()
    # the real client agrees on every file's size and LFS sha256
    hf_files = {
        f.path: f
        for f in api(hub_env).list_repo_tree("acme/m", revision="v1", recursive=True)  # type: ignore[attr-defined]
        if hasattr(f, "size") and not hasattr(f, "tree_id")
    }
    code, out, _ = run(capsys, "hf", "ls", "acme/m", "--revision", "v1", "-R", "--json")
    ours = {e["path"]: e for e in json.loads(out) if e["type"] == "file"}
    assert set(ours) == set(hf_files)
    for path, f in hf_files.items():
        assert ours[path]["size"] == f.size and ours[path]["blob_id"] == f.blob_id
        assert ours[path]["lfs_sha256"] == (f.lfs.sha256 if f.lfs else None)

    code, out, _ = run(capsys, "hf", "ls", "acme/m", "sub")
    rows = [line.split("\t") for line in out.splitlines()]
    assert code == 0 and rows[0] == ["PATH", "BYTES", "SIZE", "LFS SHA256"]
    assert [r[0] for r in rows[1:]] == ["sub/deep/", "sub/r.txt"] and rows[2][1] == "1"
    code, out, _ = run(capsys, "hf", "ls", "acme/m")  # main moved on
    assert "late.txt" in out


def test_ls_errors(hub_env: HubServer, capsys: pytest.CaptureFixture[str]) -> None:
    hub_env.store.commit("acme/m", {"a.txt": b"1"})
    code, _, err = run(capsys, "hf", "ls", "acme/nope")
    assert code == 8
    one_paragraph(err, "repo-not-found")
    code, _, err = run(capsys, "hf", "ls", "acme/m", "missing")
    assert code == 8
    code, _, err = run(capsys, "hf", "ls", "acme/m", "--revision", "nope")
    assert code == 8 and "revision-not-found" in err
    code, _, err = run(capsys, "hf", "ls", "acme/m", "../etc")
    assert code == 64
    one_paragraph(err, "usage")


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"branches": {"main": "x"}},
        {"branches": [{"name": "main", "targetCommit": "not-a-sha"}]},
        {"tags": [{"name": "../../x", "targetCommit": "a" * 40}]},
        {"tags": ["junk"]},
    ],
)
def test_hostile_refs_answers_are_refused(
    body: object, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.hostile.hub import HostileHub

    def answer(req: object) -> None:
        req._send(200, json.dumps(body).encode(), {"Content-Type": "application/json"})  # type: ignore[attr-defined]

    with HostileHub() as evil:
        evil.route("GET", r"^/api/models/acme/m/refs$", answer)
        monkeypatch.setenv("HF_ENDPOINT", evil.url)
        code, out, err = run(capsys, "hf", "repo", "tag", "list", "acme/m")
    assert code in (9, 11) and out == "" and "Traceback" not in err


@pytest.mark.parametrize(
    "tree",
    [
        [{"type": "file", "path": "../../etc/passwd", "size": 1, "oid": "a" * 40}],
        [{"type": "directory", "path": "/abs", "oid": "a" * 40}],
        [{"type": "file", "path": "w.gguf", "size": 1, "oid": "a" * 40, "lfs": {"oid": "../x", "size": 1}}],
        [{"type": "file", "path": "w", "size": -1, "oid": "a" * 40}],
        {"not": "a list"},
    ],
)
def test_hostile_tree_listings_are_refused(
    tree: object, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.hostile.hub import HostileHub

    with HostileHub() as evil:
        evil.repo("acme/m", tree=tree)
        monkeypatch.setenv("HF_ENDPOINT", evil.url)
        code, out, err = run(capsys, "hf", "ls", "acme/m", "--json")
    assert code in (9, 11) and out == "" and "Traceback" not in err
    assert "/etc/passwd" not in out


def test_repo_group_without_action_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "hf", "repo", "tag")
    assert code == 64 and "create" in out and "delete" in out


@pytest.mark.skipif(__import__("shutil").which("bash") is None, reason="bash not installed")
def test_bash_completion_knows_the_new_commands(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.test_cli_completion import _complete

    assert main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    assert {"repo", "ls"} <= _complete(script, ["batuta", "hf", ""])
    assert "init" in _complete(script, ["batuta", ""])
    assert {"create", "delete", "branch", "tag", "ls"} <= _complete(script, ["batuta", "hf", "repo", ""])
    assert {"create", "delete"} <= _complete(script, ["batuta", "hf", "repo", "tag", ""])
    assert "--exist-ok" in _complete(script, ["batuta", "hf", "repo", "create", "--ex"])
    assert "--recursive" in _complete(script, ["batuta", "hf", "ls", "--rec"])


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_fish_completion_know_the_new_commands(shell: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    for word in ("repo", "init", "exist-ok", "missing-ok", "recursive", "force"):
        assert word in script


def test_entries_from_tree_refuses_a_non_list() -> None:
    from batuta_sync.errors import HubError
    from batuta_sync.hub.repos import entries_from_tree

    with pytest.raises(HubError):
        entries_from_tree({"not": "a list"})


def test_parity_table_names_every_batuta_command() -> None:
    """docs/hf-parity.md mentions every top-level and `hf` command (a new command needs a row)."""
    from batuta_sync.cli import build_parser
    from batuta_sync.cli._introspect import walk

    text = (Path(__file__).resolve().parents[2] / "docs" / "hf-parity.md").read_text(encoding="utf-8")
    missing = [
        " ".join(node.path)
        for node in walk(build_parser())
        if node.path and len(node.path) <= (2 if node.path[0] in ("hf", "cache") else 1)
        and node.path != ("hf",)
        and f"batuta {' '.join(node.path)}" not in text
    ]
    assert missing == []
