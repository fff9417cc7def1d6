#!/usr/bin/env python3
"""The RLAIF-to-human loop of `rlhfkit collect`, end to end, as a user runs it (issue 20, item 6).

An AI judge labels every candidate pair; people label only the pairs it was unsure about; the export merges both.

    1. candidates  the held-out part of bundled:support (`rlhfkit data split --test-fraction 0.15 --seed 42`) as
                   {id, prompt, response_a, response_b}, the chosen response on a seeded random side (the known
                   answer is kept aside for the simulated people), or --candidates FILE (`rlhfkit generate`
                   output; a `known_label` field "A"/"B", where present, is its known answer)
    2. the judge   `rlhfkit label --judge rm:RM_DIR` (--reward-model RM_DIR, or --train-rm trains one on the
                   split's train part with `rlhfkit rm train`)
    3. routing     `rlhfkit collect init`, `project create --overlap 2`, `user add` per simulated annotator,
                   `import --from-labels prefs.jsonl --route uncertain`; with --audit N also N of the judge's
                   confident pairs (seeded), so the judge is checked where it is sure too
    4. the people  `rlhfkit collect serve` in a child process; each simulated annotator opens their login link
                   and labels over HTTP like a browser: GET /p/{slug}/next -> 303 /a/{uid}, read csrf, nonce and
                   the two responses from the page, POST /a/{uid} with an Origin header. They give the known
                   answer with probability --human-accuracy, the other response otherwise (a coin flip when the
                   pair has no known answer), mapping "A is better" to the screen side the page showed it on
    5. export      `rlhfkit collect export --judge-outcomes prefs.outcomes.jsonl` (human majority labels plus the
                   judge's confident ones, each with its `source`), `collect stats --json`, `data check`
    6. the report  printed, and as the last line one JSON object (keys in `build_report`)

    python scripts/rlaif_to_human.py --train-rm --work runs/rlaif-to-human
    python scripts/rlaif_to_human.py --reward-model runs/rm/final --audit 12 --human-accuracy 0.9
    python scripts/rlaif_to_human.py --reward-model runs/rlaif-to-human/rm/final --min-confidence 0.99 \\
        --judge-cache runs/rlaif-to-human/prefs.judge-cache.jsonl --work runs/rlaif-to-human-0.99

Arithmetic the report keeps (tests/collect/test_rlaif_loop.py checks it): routed + left_out + confident = pairs;
labels_saved = confident agreeing pairs not sent to people (audit pairs are sent, so they are not saved);
merged records = human-labelled pairs + labels_saved. Judge-human agreement is measured on the pairs people
labelled where the judge had a verdict (its unsure "agree" pairs, its ties, and the audit pairs), against the
human plurality: accuracy and Cohen's kappa (collect/quality.py).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Optional

from rlhfkit.errors import RlhfkitError

SLUG = "rlaif"
SPLIT = ("--test-fraction", "0.15", "--seed", "42")
RM_TRAIN = ("--lora", "--lora-layers", "10", "--learning-rate", "5e-4", "--max-steps", "32", "--batch-size", "8",
            "--max-length", "256", "--max-prompt-length", "128", "--stats-pairs", "48")


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n")[1])
    p.add_argument("--work", default="runs/rlaif-to-human", help="folder for every file of the run (must not hold "
                                                                 "a collect.db yet)")
    judge = p.add_mutually_exclusive_group(required=True)
    judge.add_argument("--reward-model", metavar="DIR", help="reward model folder (`rlhfkit rm train` output)")
    judge.add_argument("--train-rm", action="store_true", help="train one on the split's train part (~2 min on CPU)")
    p.add_argument("--candidates", metavar="FILE", help="your own candidate pairs instead of the held-out pairs")
    p.add_argument("--max-pairs", type=int, default=None, help="use only the first N candidate pairs")
    p.add_argument("--annotators", type=int, default=3, help="simulated annotators")
    p.add_argument("--overlap", type=int, default=2, help="annotators per item")
    p.add_argument("--human-accuracy", type=float, default=0.9, help="chance a simulated person gives the known "
                                                                     "answer")
    p.add_argument("--min-confidence", type=float, default=0.7, help="an agreeing verdict below this is unsure")
    p.add_argument("--max-items", type=int, default=None, help="budget: at most this many unsure pairs to people")
    p.add_argument("--audit", type=int, default=0, help="also send this many confident pairs to people")
    p.add_argument("--seed", type=int, default=0, help="sides of the candidates, audit sample, people's answers")
    p.add_argument("--judge-cache", metavar="FILE", default=None,
                   help="`rlhfkit label --cache`: reuse an earlier run's verdicts (e.g. at another --min-confidence)")
    args = p.parse_args(argv)
    if not 0.0 <= args.human_accuracy <= 1.0:
        p.error(f"--human-accuracy must be in [0, 1], got {args.human_accuracy}")
    for name in ("annotators", "overlap"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1")
    if args.audit < 0 or (args.max_pairs is not None and args.max_pairs < 1):
        p.error("--audit must be >= 0 and --max-pairs >= 1")
    return args


# ----------------------------------------------------------------------------------------------
# the CLI, in this process
# ----------------------------------------------------------------------------------------------
class _Tee(io.TextIOBase):
    """stdout that is also kept (the CLI prints login links, JSON reports and the trained model's folder)."""

    def __init__(self, echo: bool):
        self.kept, self.echo, self.real = io.StringIO(), echo, sys.stdout

    def write(self, s: str) -> int:
        self.kept.write(s)
        if self.echo:
            self.real.write(s)
        return len(s)


def cli(*argv: str, echo: bool = True, ok: tuple[int, ...] = (0,)) -> tuple[int, str]:
    """`rlhfkit ARGV...` through rlhfkit.cli.main: (exit code, what it printed); RlhfkitError on another code."""
    from rlhfkit.cli import main as rlhfkit_main

    print(f"$ rlhfkit {' '.join(argv)}", flush=True)
    tee = _Tee(echo)
    with contextlib.redirect_stdout(tee):
        rc = rlhfkit_main(list(argv))
    if rc not in ok:
        raise RlhfkitError(f"`rlhfkit {' '.join(argv)}` exited {rc}:\n{tee.kept.getvalue()[-2000:]}")
    return rc, tee.kept.getvalue()


def cli_json(*argv: str) -> dict:
    """A `--json` verb's printed object."""
    _, out = cli(*argv, "--json", echo=False)
    return json.loads(out)


# ----------------------------------------------------------------------------------------------
# 1. candidates, with the known answers kept aside
# ----------------------------------------------------------------------------------------------
def held_out_candidates(work: Path, seed: int, max_pairs: Optional[int]) -> tuple[list[dict], dict[str, str]]:
    """The split's test pairs as candidates, chosen on a seeded random side; answers {id: "A" | "B"}."""
    from rlhfkit.data.io import load_preferences

    rng = random.Random(seed)
    rows, answers = [], {}
    for i, ex in enumerate(load_preferences(work / "data" / "test.jsonl")):
        ident = ex.id or f"pair-{i + 1}"
        side = rng.choice("AB")
        a, b = (ex.chosen, ex.rejected) if side == "A" else (ex.rejected, ex.chosen)
        rows.append({"id": ident, "prompt": ex.prompt, "response_a": a, "response_b": b})
        answers[ident] = side
    return rows[:max_pairs], {r["id"]: answers[r["id"]] for r in rows[:max_pairs]}


def own_candidates(path: str, max_pairs: Optional[int]) -> tuple[list[dict], dict[str, str]]:
    """A user's candidate file (ids added where missing); answers from its optional `known_label` field."""
    from rlhfkit.data.candidates import read_candidates
    from rlhfkit.data.io import read_json_objects

    cands = read_candidates(path)   # checks every record (file:line: field errors)
    known = {}
    if path.endswith(".jsonl"):
        for n, obj in read_json_objects(path):
            if obj.get("known_label") is not None:
                if obj["known_label"] not in ("A", "B"):
                    raise RlhfkitError(f"{path}:{n}: known_label: must be A or B, got {obj['known_label']!r}")
                known[n] = obj["known_label"]
    rows, answers = [], {}
    for c in cands[:max_pairs]:
        ident = c.id if c.id is not None else f"pair-{c.line}"
        rows.append({"id": ident, "prompt": c.prompt, "response_a": c.response_a, "response_b": c.response_b})
        if c.line in known:
            answers[ident] = known[c.line]
    if len({r["id"] for r in rows}) != len(rows):
        raise RlhfkitError(f"{path}: candidate ids repeat; give every pair its own id")
    return rows, answers


def text(value: Any) -> str:
    from rlhfkit.data.formats import text_of

    return text_of(value)


# ----------------------------------------------------------------------------------------------
# 2-3. the judge, the project, the routing
# ----------------------------------------------------------------------------------------------
def reward_model(args: argparse.Namespace, work: Path) -> str:
    """--reward-model, or `rlhfkit rm train` on the split's train part (its printed "final model: DIR")."""
    if args.reward_model:
        return args.reward_model
    _, out = cli("rm", "train", "--data", str(work / "data" / "train.jsonl"), "--output", str(work / "rm"),
                 *RM_TRAIN, "--no-progress")
    finals = [line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("final model:")]
    if not finals:
        raise RlhfkitError("`rlhfkit rm train` did not print its final model folder")
    return finals[-1]


def audit_sample(confident: list[dict], n: int, seed: int) -> list[dict]:
    """n of the judge's confident agreeing pairs, seeded, in input order."""
    agreeing = [i for i, r in enumerate(confident) if r["status"] == "agree"]
    chosen = sorted(random.Random(f"audit:{seed}").sample(agreeing, min(n, len(agreeing))))
    return [confident[i] for i in chosen]


def set_up(args: argparse.Namespace, work: Path, prefs: Path, base_url: str) -> dict:
    """init, project, annotators, routed import (+ audit import). Returns the routing facts and the links."""
    from rlhfkit.collect import route
    from rlhfkit.data.io import write_jsonl_rows

    db = str(work / "collect.db")
    cli("collect", "init", "--db", db, "--base-url", base_url)
    cli("collect", "project", "create", SLUG, "--db", db, "--name", "RLAIF-to-human", "--overlap",
        str(args.overlap), "--reason", "optional")
    links = {}
    for k in range(1, args.annotators + 1):
        name = f"annotator{k}"
        _, out = cli("collect", "user", "add", name, "--db", db, "--project", SLUG, "--base-url", base_url)
        links[name] = next(w for w in out.split() if w.startswith(f"{base_url}/login/"))
    budget = [] if args.max_items is None else ["--max-items", str(args.max_items)]
    imported = cli_json("collect", "import", SLUG, str(prefs), "--db", db, "--from-labels", "--route", "uncertain",
                        "--min-confidence", str(args.min_confidence), *budget, "--seed", str(args.seed))
    to_humans, confident, routed = route.select_uncertain(prefs, min_confidence=args.min_confidence,
                                                          max_items=args.max_items, seed=args.seed)
    if imported["added"] != len(to_humans) or imported["route"]["to_humans"] != len(to_humans):
        raise RlhfkitError(f"the import added {imported['added']} items, routing chose {len(to_humans)}")
    audit = audit_sample(confident, args.audit, args.seed)
    if audit:
        audit_file = work / "audit.outcomes.jsonl"
        write_jsonl_rows(audit_file, audit)
        added = cli_json("collect", "import", SLUG, str(audit_file), "--db", db, "--from-labels")
        if added["added"] != len(audit):
            raise RlhfkitError(f"the audit import added {added['added']} of {len(audit)} pairs")
    print(f"routing: {routed['to_humans']} of {routed['pairs']} pairs to people ({routed['uncertain']} unsure, "
          f"{routed['left_out']} over the budget), {len(audit)} confident pairs audited", flush=True)
    return {"db": db, "links": links, "to_humans": to_humans, "confident": confident, "audit": audit,
            "route": routed}


# ----------------------------------------------------------------------------------------------
# 4. the people, over HTTP
# ----------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`rlhfkit collect serve` in a child process, its output in `log`; stopped by its own pid."""

    def __init__(self, db: str, port: int, log: Path):
        self.db, self.port, self.log = db, port, log
        self.base = f"http://127.0.0.1:{port}"
        self.proc: Optional[subprocess.Popen] = None

    def __enter__(self) -> "Server":
        import httpx

        cmd = [sys.executable, "-m", "rlhfkit.cli", "collect", "serve", "--db", self.db, "--port", str(self.port)]
        print(f"$ rlhfkit {' '.join(cmd[3:])}  (log: {self.log})", flush=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RlhfkitError(f"the server exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.__exit__()
        raise RlhfkitError(f"the server did not answer /healthz within 60 s: {self.log.read_text()[-2000:]}")

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


_HIDDEN = r'<input type="hidden" name="{}" value="([^"]*)">'
_SIDE = r'<article class="response" id="{}">.*?<div class="text">(.*?)</div>'
_TURN = re.compile(r'<div class="turn">\s*<div class="role">.*?</div>\s*<div class="text">(.*?)</div>', re.S)


def read_page(html: str) -> dict:
    """csrf, nonce, the prompt turns and the left/right responses as the page's HTML shows them."""
    out = {}
    for name in ("csrf", "nonce"):
        m = re.search(_HIDDEN.format(name), html)
        if m is None:
            raise RlhfkitError(f"the annotate page has no hidden {name} field")
        out[name] = m.group(1)
    for side in ("left", "right"):
        m = re.search(_SIDE.format(side), html, re.S)
        if m is None:
            raise RlhfkitError(f"the annotate page shows no {side} response")
        out[side] = m.group(1)
    out["turns"] = _TURN.findall(html)
    return out


def shown_key(turns: list[str], x: str, y: str) -> str:
    """A pair as the page renders it (escaped HTML), whichever side each response is on."""
    return json.dumps([turns, sorted([x, y])])


def answer_book(rows: list[dict], answers: dict[str, str]) -> dict[str, Optional[str]]:
    """{shown_key: the known better response as rendered (None: no known answer)} for every candidate."""
    from rlhfkit.collect.server import transcript, visible

    book = {}
    for r in rows:
        a, b = str(visible(text(r["response_a"]))), str(visible(text(r["response_b"])))
        turns = [str(visible(t["content"])) for t in transcript(r["prompt"])]
        known = answers.get(r["id"])
        book[shown_key(turns, a, b)] = None if known is None else a if known == "A" else b
    return book


class Annotator:
    """One simulated person with a browser-like HTTP client (cookies kept, redirects read by hand)."""

    def __init__(self, name: str, base: str, link: str, accuracy: float, seed: int):
        import httpx

        self.name, self.base, self.accuracy = name, base, accuracy
        self.rng = random.Random(f"{seed}:{name}")
        self.client = httpx.Client(base_url=base, follow_redirects=False, timeout=30)
        r = self.client.get(link[len(base):])
        if r.status_code != 303 or not self.client.cookies.get("rk_session"):
            raise RlhfkitError(f"{name}: the login link answered {r.status_code} without a session")
        self.done, self.judgments, self.correct, self.left = False, 0, 0, 0

    def step(self, book: dict) -> bool:
        """Label one item; False (and done) when the app says there is nothing left for this person."""
        r = self.client.get(f"/p/{SLUG}/next")
        if r.status_code == 200:
            self.done = True
            return False
        if r.status_code != 303:
            raise RlhfkitError(f"{self.name}: GET /p/{SLUG}/next answered {r.status_code}")
        where = r.headers["location"]
        page = self.client.get(where)
        if page.status_code != 200:
            raise RlhfkitError(f"{self.name}: GET {where} answered {page.status_code}")
        shown = read_page(page.text)
        key = shown_key(shown["turns"], shown["left"], shown["right"])
        if key not in book:
            raise RlhfkitError(f"{self.name}: the page at {where} shows a pair that is not among the candidates")
        better = book[key]
        if better is None:
            side = self.rng.choice(("left", "right"))
        else:
            right_answer = "left" if shown["left"] == better else "right"
            truthful = self.rng.random() < self.accuracy
            side = right_answer if truthful else ("right" if right_answer == "left" else "left")
            self.correct += truthful
        form = {"csrf": shown["csrf"], "nonce": shown["nonce"], "choice": side, "client_ms": "0"}
        r = self.client.post(where, data=form, headers={"Origin": self.base})
        if r.status_code != 303:
            raise RlhfkitError(f"{self.name}: POST {where} answered {r.status_code}: {r.text[:300]}")
        self.judgments += 1
        self.left += side == "left"
        return True


def simulate_people(server: Server, links: dict, book: dict, accuracy: float, seed: int) -> list[dict]:
    """Every annotator labels until the app has nothing left for them, one item each in turn."""
    people = [Annotator(name, server.base, link, accuracy, seed) for name, link in links.items()]
    try:
        while not all(p.done for p in people):
            for p in people:
                if not p.done:
                    p.step(book)
    finally:
        for p in people:
            p.client.close()
    return [{"annotator": p.name, "judgments": p.judgments, "gave_known_answer": p.correct,
             "left_choices": p.left} for p in people]


# ----------------------------------------------------------------------------------------------
# 5-6. export, agreement, the report
# ----------------------------------------------------------------------------------------------
def rate(k: int, n: int) -> Optional[float]:
    return round(k / n, 4) if n else None


def judge_vs_humans(judgment_lines: list[dict], outcomes: dict[str, dict], groups: dict[str, set]) -> dict:
    """The judge's verdict (A/B/tie) against the human plurality on each pair both labelled, overall and per
    group (routed unsure pairs, audited confident pairs): pairs, agreed, accuracy, cohen_kappa."""
    from rlhfkit.collect.quality import cohen_kappa, plurality

    votes: dict[str, list[str]] = {}
    for j in judgment_lines:
        if j["choice"] in ("A", "B", "tie") and not j.get("is_gold"):
            votes.setdefault(j["id"], []).append(j["choice"])
    pairs = []
    for ident, vs in votes.items():
        verdict = {"a": "A", "b": "B", "tie": "tie"}.get(outcomes[ident]["winner"])
        human = plurality(vs)
        if verdict is not None and human is not None:
            pairs.append((ident, human, verdict))

    def summary(sel: list[tuple]) -> dict:
        kappa = cohen_kappa([h for _, h, _ in sel], [v for _, _, v in sel]) if sel else None
        agreed = sum(h == v for _, h, v in sel)
        return {"pairs": len(sel), "agreed": agreed, "accuracy": rate(agreed, len(sel)),
                "cohen_kappa": None if kappa is None else round(kappa, 4)}

    out = summary(pairs)
    out["by_group"] = {g: summary([p for p in pairs if p[0] in ids]) for g, ids in groups.items()}
    return out


def known_matches(records: list[dict], rows: dict[str, dict], answers: dict[str, str]) -> dict:
    """Merged records whose chosen response is the known answer: overall and by source kind."""
    by: dict[str, list[int]] = {}
    for rec in records:
        known = answers.get(rec["id"])
        if known is None:
            continue
        row = rows[rec["id"]]
        good = text(row["response_a"] if known == "A" else row["response_b"])
        kind = "human" if str(rec["source"]).startswith("human:") else "judge"
        by.setdefault(kind, []).append(text(rec["chosen"]).strip() == good.strip())
    n = sum(len(v) for v in by.values())
    k = sum(sum(v) for v in by.values())
    return {"records_with_known_answer": n, "match": k, "accuracy": rate(k, n),
            "by_source": {s: {"records": len(v), "match": sum(v), "accuracy": rate(sum(v), len(v))}
                          for s, v in sorted(by.items())}}


def export_and_check(args: argparse.Namespace, db: str, work: Path, outcomes_file: Path) -> dict:
    """export (merged), stats, data check: their parsed outputs and the merged records."""
    from rlhfkit.data.io import read_json_objects

    merged = work / "merged.jsonl"
    summary = cli_json("collect", "export", SLUG, "--db", db, "--output", str(merged), "--judge-outcomes",
                       str(outcomes_file), "--min-confidence", str(args.min_confidence))
    stats = cli_json("collect", "stats", SLUG, "--db", db)
    rc, out = cli("data", "check", str(merged), "--json", echo=False, ok=(0, 1))
    check = json.loads(out)
    records = [obj for _, obj in read_json_objects(merged)] if merged.stat().st_size else []
    lines = [obj for _, obj in read_json_objects(summary["judgments"])] if Path(summary["judgments"]).stat().st_size \
        else []
    return {"summary": summary, "stats": stats, "check": check, "check_rc": rc, "records": records,
            "judgment_lines": lines, "merged": str(merged)}


def build_report(args, rows: list[dict], answers: dict, label: dict, setup: dict, people: list[dict],
                 done: dict) -> dict:
    """The loop's numbers (module doc for their arithmetic)."""
    outcomes = {r["id"]: r for r in setup["outcome_rows"]}
    routed_ids = {r["id"] for r in setup["to_humans"]}
    audit_ids = {r["id"] for r in setup["audit"]}
    confident = setup["confident"]
    conf_agree = [r for r in confident if r["status"] == "agree"]
    judge_right = [r for r in conf_agree if r["id"] in answers]
    n_right = sum({"a": "A", "b": "B"}[r["winner"]] == answers[r["id"]] for r in judge_right)
    merge, counts, records = done["summary"]["merge"], done["summary"]["counts"], done["records"]
    judge_ids = setup["route"]["judges"]
    stats_judge = [j for j in done["stats"]["judge"]["judges"] if j["judge"] in judge_ids]
    votes = sum(p["judgments"] for p in people)
    return {
        "pairs": len(rows), "judge": label["judge"], "judge_by_status": setup["route"]["by_status"],
        "min_confidence": args.min_confidence, "max_items": args.max_items,
        "confident": len(confident), "confident_agree": len(conf_agree), "uncertain": setup["route"]["uncertain"],
        "routed": len(routed_ids), "left_out": setup["route"]["left_out"], "audited": len(audit_ids),
        "annotators": args.annotators, "overlap": args.overlap, "human_accuracy": args.human_accuracy,
        "items_for_people": len(routed_ids) + len(audit_ids), "human_labels": votes,
        "human_labels_by_annotator": people, "human_labelled_pairs": merge["human_records"],
        "dropped_human_items": {k: v for k, v in counts["dropped"].items() if v},
        "labels_saved": merge["labels_saved"], "labels_saved_share": rate(merge["labels_saved"], len(rows)),
        "human_labels_saved": merge["labels_saved"] * args.overlap,
        "judge_human_agreement": judge_vs_humans(done["judgment_lines"], outcomes,
                                                 {"routed": routed_ids, "audit": audit_ids}),
        "stats_judge_vs_humans": stats_judge[0]["vs_humans"] if stats_judge else None,
        "krippendorff_alpha": done["stats"]["agreement"].get("krippendorff_alpha"),
        "judge_confident_vs_known": {"pairs": len(judge_right), "correct": n_right,
                                     "accuracy": rate(n_right, len(judge_right))},
        "merged": {"file": done["merged"], "records": len(records), "by_source": merge["by_source"],
                   "data_check": {"errors": len(done["check"]["errors"]), "warnings":
                                  [w["code"] for w in done["check"]["warnings"]],
                                  "valid_pairs": done["check"]["stats"].get("valid_pairs", 0)},
                   "known": known_matches(records, {r["id"]: r for r in rows}, answers)},
    }


def print_report(r: dict) -> None:
    a, m = r["judge_human_agreement"], r["merged"]
    g = a["by_group"]
    lines = [
        "", "== the RLAIF-to-human loop ==",
        f"pairs: {r['pairs']}; judge {r['judge']}: {r['judge_by_status']}",
        f"confident (agree, confidence >= {r['min_confidence']}): {r['confident']}; unsure: {r['uncertain']} -> "
        f"{r['routed']} routed to people, {r['left_out']} over the budget; {r['audited']} confident pairs audited",
        f"people: {r['annotators']} simulated annotators (accuracy {r['human_accuracy']}), overlap {r['overlap']}: "
        f"{r['human_labels']} labels on {r['items_for_people']} pairs, {r['human_labelled_pairs']} pairs with a "
        f"majority (dropped: {r['dropped_human_items'] or 'none'}); Krippendorff's alpha {r['krippendorff_alpha']}",
        f"labels saved by the judge: {r['labels_saved']} of {r['pairs']} pairs ({r['labels_saved_share']}), i.e. "
        f"{r['human_labels_saved']} human labels at overlap {r['overlap']}",
        f"judge-human agreement on {a['pairs']} pairs both labelled: accuracy {a['accuracy']}, Cohen's kappa "
        f"{a['cohen_kappa']} (routed unsure pairs: {g['routed']['accuracy']} on {g['routed']['pairs']}; audited "
        f"confident pairs: {g['audit']['accuracy']} on {g['audit']['pairs']})",
        f"judge vs the known answers on its confident pairs: {r['judge_confident_vs_known']['accuracy']} "
        f"({r['judge_confident_vs_known']['correct']}/{r['judge_confident_vs_known']['pairs']})",
        f"merged file {m['file']}: {m['records']} records {m['by_source']}; data check: {m['data_check']['errors']} "
        f"errors, {m['data_check']['valid_pairs']} valid pairs, warnings {m['data_check']['warnings'] or 'none'}",
        f"merged labels matching the known answers: {m['known']['match']}/{m['known']['records_with_known_answer']} "
        f"({m['known']['accuracy']}); by source {m['known']['by_source']}",
        f"wall seconds per phase: {r.get('seconds')}",
    ]
    print("\n".join(lines))
    print(json.dumps(r, default=str), flush=True)


def main(argv: Optional[list[str]] = None) -> dict:
    """Run the loop (module doc); prints the report and returns it."""
    from rlhfkit.collect import route
    from rlhfkit.data.io import write_jsonl_rows

    args = parse_args(argv)
    work = Path(args.work)
    if (work / "collect.db").exists():
        raise RlhfkitError(f"{work}/collect.db exists: give a new --work folder (or delete that one)")
    work.mkdir(parents=True, exist_ok=True)
    clock = [time.monotonic()]
    seconds: dict[str, float] = {}

    def lap(phase: str) -> None:  # wall seconds of each phase, for the report
        clock.append(time.monotonic())
        seconds[phase] = round(clock[-1] - clock[-2], 1)

    cli("data", "split", "bundled:support", *SPLIT, "--output-dir", str(work / "data"))
    rows, answers = (own_candidates(args.candidates, args.max_pairs) if args.candidates
                     else held_out_candidates(work, args.seed, args.max_pairs))
    write_jsonl_rows(work / "candidates.jsonl", rows)
    (work / "answers.json").write_text(json.dumps(answers, indent=1) + "\n", encoding="utf-8")
    rm_dir = reward_model(args, work)
    lap("reward_model")
    prefs = work / "prefs.jsonl"
    label = cli_json("label", "--judge", f"rm:{rm_dir}", "--input", str(work / "candidates.jsonl"), "--output",
                     str(prefs), "--no-progress", *(["--cache", args.judge_cache] if args.judge_cache else []))
    lap("label")
    port = free_port()
    setup = set_up(args, work, prefs, f"http://127.0.0.1:{port}")
    setup["outcome_rows"] = route.read_outcomes(label["outcomes"])
    with Server(setup["db"], port, work / "server.log") as server:
        people = simulate_people(server, setup["links"], answer_book(rows, answers), args.human_accuracy, args.seed)
    print(f"people: {Counter({p['annotator']: p['judgments'] for p in people})}", flush=True)
    lap("collect")
    done = export_and_check(args, setup["db"], work, Path(label["outcomes"]))
    lap("export")
    report = build_report(args, rows, answers, label, setup, people, done)
    report["seconds"] = {**seconds, "total": round(clock[-1] - clock[0], 1)}
    print_report(report)
    return report


if __name__ == "__main__":
    try:
        main()
    except RlhfkitError as e:
        print(f"rlhfkit: error: {e}", file=sys.stderr)
        sys.exit(2)
