"""`rlhfkit collect ...` end to end through `rlhfkit.cli.main`: init, project create, user add/link/disable,
import of `rlhfkit generate` output (and of `rlhfkit label` outcomes with --route uncertain), export, stats, and
`serve` as a real process. Printed login links must work with `Store.use_login_link`."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from rlhfkit.cli import main
from rlhfkit.collect.store import Store
from rlhfkit.data.candidates import candidate_rows
from rlhfkit.data.io import write_jsonl_rows

LINK = re.compile(r"http://127\.0\.0\.1:8000/login/([A-Za-z0-9_-]{43})")


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["collect", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def token_of(text: str) -> str:
    found = LINK.findall(text)
    assert len(found) == 1, text
    return found[0]


@pytest.fixture
def db(tmp_path, capsys):
    path = str(tmp_path / "c.db")
    code, out, _ = run(capsys, "init", "--db", path)
    assert code == 0
    return path, token_of(out)


def generate_file(path: Path, n_prompts: int = 3) -> str:
    rows, _ = candidate_rows([f"prompt {i}" for i in range(n_prompts)],
                             [[f"r{i}a", f"r{i}b", f"r{i}c"] for i in range(n_prompts)], generator="tiny")
    write_jsonl_rows(path, rows)
    return str(path)


HELP = [["--help"], ["init", "--help"], ["serve", "--help"], ["project", "create", "--help"],
        ["project", "list", "--help"], ["import", "--help"], ["user", "add", "--help"], ["user", "link", "--help"],
        ["user", "disable", "--help"], ["user", "list", "--help"], ["export", "--help"], ["stats", "--help"]]


@pytest.mark.parametrize("argv", HELP, ids=lambda a: " ".join(a))
def test_help_prints(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(["collect", *argv])
    assert e.value.code == 0 and "usage: rlhfkit collect" in capsys.readouterr().out


def test_init_prints_a_working_one_time_admin_link(db, capsys):
    path, token = db
    store = Store.open(path)
    admin = store.use_login_link(token)
    assert admin is not None and admin.name == "admin" and admin.role == "admin"
    assert store.use_login_link(token) is None  # one time
    assert [u.name for u in store.users()] == ["admin"]  # no other account, no default password
    store.close()
    code, _, err = run(capsys, "init", "--db", path)
    assert code == 2 and err.count("\n") == 1 and "already initialised" in err


def test_default_database_from_the_environment(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, _ = run(capsys, "init")
    assert code == 0 and (tmp_path / "collect.db").is_file()
    monkeypatch.setenv("RLHFKIT_COLLECT_DB", str(tmp_path / "env.db"))
    assert run(capsys, "init", "--admin", "boss")[0] == 0
    assert Store.open(str(tmp_path / "env.db")).user("boss").role == "admin"


def test_projects_users_and_links(db, tmp_path, capsys):
    path, _ = db
    guide = tmp_path / "guide.txt"
    guide.write_text("Prefer the helpful answer.\n", encoding="utf-8")
    code, out, _ = run(capsys, "project", "create", "demo", "--db", path, "--overlap", "2", "--gold-every", "5",
                       "--guidelines", str(guide), "--reason", "required", "--retire-after-skips", "2")
    assert code == 0 and "2 annotators per item" in out
    code, out, _ = run(capsys, "user", "add", "ann", "--db", path, "--project", "demo")
    assert code == 0
    store = Store.open(path)
    project = store.project("demo")
    assert (project.overlap, project.gold_every, project.reason, project.retire_after_skips) == (2, 5, "required", 2)
    assert project.guidelines == "Prefer the helpful answer.\n"
    ann = store.use_login_link(token_of(out))
    assert ann.name == "ann" and ann.role == "annotator" and store.is_member(project.id, ann.id)
    code, out, _ = run(capsys, "user", "link", "ann", "--db", path, "--base-url", "https://label.example.org/")
    assert code == 0 and re.search(r"https://label\.example\.org/login/[A-Za-z0-9_-]{43}\n", out)
    code, out, _ = run(capsys, "user", "link", "ann", "--db", path)
    link = token_of(out)
    assert run(capsys, "user", "disable", "ann", "--db", path)[0] == 0
    assert store.use_login_link(link) is None and store.user("ann").disabled
    code, _, err = run(capsys, "user", "add", "bob", "--db", path, "--project", "nope")
    assert code == 2 and "no project 'nope'" in err and store.user("bob") is None  # nothing half-done
    code, _, err = run(capsys, "project", "create", "demo", "--db", path)
    assert code == 2 and "already exists" in err
    store.close()


def test_import_generate_output_then_export_and_stats(db, tmp_path, capsys):
    path, _ = db
    run(capsys, "project", "create", "demo", "--db", path, "--overlap", "2")
    cands = generate_file(tmp_path / "cands.jsonl")
    code, out, err = run(capsys, "import", "demo", cands, "--db", path)
    assert code == 0 and err == ""
    assert "read 9 records" in out and "9 valid, 0 invalid" in out and "added 9 items" in out
    code, out, _ = run(capsys, "import", "demo", cands, "--db", path, "--json")
    report = json.loads(out)
    assert (code, report["added"], report["duplicates"], report["invalid"]) == (0, 0, 9, 0)
    # two annotators label everything: "left" for one, the A side for the other
    store = Store.open(path)
    project = store.project("demo")
    for name in ("ann", "bob"):
        user = store.add_user(name)
        while (a := store.next_assignment(project.id, user.id)) is not None:
            click = "left" if name == "ann" or a.left_is_a else "right"
            store.submit(a.uid, user.id, click, nonce=a.nonce)
    store.close()
    out_file = tmp_path / "prefs.jsonl"
    code, out, _ = run(capsys, "export", "demo", "--db", path, "-o", str(out_file))
    assert code == 0 and out_file.is_file() and (tmp_path / "prefs.provenance.json").is_file()
    assert main(["data", "check", str(out_file)]) == 0  # the export is a valid preference file
    capsys.readouterr()
    code, out, _ = run(capsys, "stats", "demo", "--db", path, "--json")
    stats = json.loads(out)
    assert code == 0 and stats["judgments"]["total"] == 18 and stats["items"]["total"] == 9
    assert run(capsys, "stats", "demo", "--db", path)[0] == 0


def test_import_reports_bad_records_with_file_and_line(db, tmp_path, capsys):
    path, _ = db
    run(capsys, "project", "create", "demo", "--db", path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "q", "response_a": "x", "response_b": "y"}\n{"prompt": "q"}\n{oops\n',
                   encoding="utf-8")
    code, out, err = run(capsys, "import", "demo", str(bad), "--db", path)
    assert code == 1
    assert "added 1 items" in out
    assert f"{bad}:2: response_a: missing field 'response_a'" in err and f"{bad}:3: json: invalid JSON" in err
    assert "2 invalid records were not imported" in err


def test_import_routes_the_unsure_pairs(db, tmp_path, capsys):
    path, _ = db
    run(capsys, "project", "create", "loop", "--db", path)
    rows = [{"id": str(i), "prompt": f"q{i}", "response_a": f"a{i}", "response_b": f"b{i}", "judge": "rm:x",
             **outcome} for i, outcome in enumerate([
                 {"status": "agree", "winner": "a", "confidence": 0.95},
                 {"status": "agree", "winner": "b", "confidence": 0.55},
                 {"status": "disagree", "winner": None, "confidence": None},
                 {"status": "failed", "winner": None, "confidence": None},
                 {"status": "tie", "winner": "tie", "confidence": None}])]
    outcomes = tmp_path / "prefs.outcomes.jsonl"
    write_jsonl_rows(outcomes, rows)
    code, out, _ = run(capsys, "import", "loop", str(outcomes), "--db", path, "--from-labels", "--route",
                       "uncertain", "--max-items", "3", "--min-confidence", "0.7", "--json")
    report = json.loads(out)
    assert code == 0 and report["added"] == 3 and report["route"]["to_humans"] == 3
    store = Store.open(path)
    items = store.item_rows(store.project("loop").id)
    # least sure first within the budget of 3: disagree, failed (no verdict), then the tie
    assert sorted(i["meta"]["id"] for i in items) == ["2", "3", "4"]
    assert all(i["suggestion"]["judge"] == "rm:x" for i in items)
    store.close()
    code, _, err = run(capsys, "import", "loop", str(outcomes), "--db", path, "--route", "uncertain")
    assert code == 2 and "--from-labels" in err
    # without --route: every outcome row (3 of them already there)
    code, out, _ = run(capsys, "import", "loop", str(outcomes), "--db", path, "--from-labels", "--json")
    report = json.loads(out)
    assert (code, report["kind"], report["added"], report["duplicates"]) == (0, "outcomes", 2, 3)


def test_errors_are_one_line_exit_2(tmp_path, capsys):
    missing = str(tmp_path / "none.db")
    for argv in (["stats", "x", "--db", missing], ["user", "add", "ann", "--db", missing],
                 ["import", "x", "f.jsonl", "--db", missing]):
        code, _, err = run(capsys, *argv)
        assert code == 2 and err.startswith("rlhfkit: error: no collection database") and err.count("\n") == 1
    assert not Path(missing).exists()  # a typo in --db never creates a stray database
    code, _, err = run(capsys, "init", "--db", "mysql://h/x")
    assert code == 2 and "unsupported database URL" in err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_runs_the_app_on_loopback(db):
    path, token = db
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "rlhfkit.cli", "collect", "serve", "--db", path, "--port",
                             str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(150):
            try:
                health = httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read().decode()
                time.sleep(0.1)
        else:
            raise AssertionError("the server did not start")
        assert health.status_code == 200 and health.text.strip() == "ok"
        login = httpx.get(f"{base}/login/{token}", timeout=5)
        assert login.status_code == 303 and "rk_session" in login.cookies
    finally:
        proc.terminate()
        proc.wait(timeout=20)


class LengthJudge:
    """Prefers the longer response, sure (0.9) when they differ by more than 3 characters, else 0.6; on prompts
    containing "hard" it always names the first position (the two orders then disagree)."""

    judge_id = "fake:length"
    concurrent = False

    def judge(self, prompt, a, b):
        from rlhfkit.judges import Verdict

        if "hard" in prompt:
            return Verdict("a", 0.9, {}, self.judge_id)
        return Verdict("a" if len(a) > len(b) else "b", 0.9 if abs(len(a) - len(b)) > 3 else 0.6, {}, self.judge_id)


def test_rlaif_loop_imports_label_output(db, tmp_path, capsys):
    """`rlhfkit label` output -> import --from-labels (the judge's verdicts hidden as suggestions), and
    --route uncertain on the same output (its outcomes sidecar) sends only the unsure pairs to people."""
    from rlhfkit.judges.label import label_file

    path, _ = db
    cands = tmp_path / "cands.jsonl"
    write_jsonl_rows(cands, [{"id": "0", "prompt": "easy", "response_a": "short", "response_b": "much longer"},
                             {"id": "1", "prompt": "close", "response_a": "abcd", "response_b": "abcdef"},
                             {"id": "2", "prompt": "hard one", "response_a": "x", "response_b": "yy"}])
    prefs = tmp_path / "prefs.jsonl"
    summary = label_file(LengthJudge(), str(cands), str(prefs), progress=False)
    assert (summary["labelled"], summary["disagreements"]) == (2, 1)
    run(capsys, "project", "create", "all", "--db", path)
    run(capsys, "project", "create", "unsure", "--db", path)
    code, out, _ = run(capsys, "import", "all", str(prefs), "--db", path, "--from-labels", "--json")
    assert code == 0 and json.loads(out)["added"] == 2
    code, out, _ = run(capsys, "import", "unsure", str(prefs), "--db", path, "--from-labels", "--route",
                       "uncertain", "--json")
    report = json.loads(out)
    assert code == 0 and report["added"] == 2 and report["route"]["labels_saved"] == 1
    store = Store.open(path)
    labelled = store.item_rows(store.project("all").id)
    for item in labelled:
        s = item["suggestion"]
        assert s["judge"] == "fake:length" and s["status"] == "agree"
        winner = item["response_a"] if s["verdict"] == "A" else item["response_b"]
        assert winner in ("much longer", "abcdef")
    routed = store.item_rows(store.project("unsure").id)
    assert sorted(i["meta"]["id"] for i in routed) == ["1", "2"]  # low confidence (0.6) and the disagreement
    assert {i["suggestion"]["status"] for i in routed} == {"agree", "disagree"}
    store.close()


def test_collect_imports_no_torch():
    """`rlhfkit --help` loads no database or web code; the collect package never loads torch or transformers."""
    code = ("import sys\n"
            "from rlhfkit.cli import build_parser; build_parser()\n"
            "assert not [m for m in ('sqlalchemy', 'starlette', 'uvicorn') if m in sys.modules]\n"
            "import rlhfkit.collect.store, rlhfkit.collect.importer, rlhfkit.collect.server, rlhfkit.collect.export\n"
            "assert not [m for m in ('torch', 'transformers') if m in sys.modules]\n")
    subprocess.run([sys.executable, "-c", code], check=True)
