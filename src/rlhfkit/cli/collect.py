"""`rlhfkit collect init | serve | project create|list | import | user add|link|disable|list | export | stats`.

The database is `--db` (a file path, sqlite:///PATH or postgresql://USER@HOST/DB), else $RLHFKIT_COLLECT_DB, else
collect.db in the current folder. Login links are printed against `--base-url` (default http://127.0.0.1:8000, or
$RLHFKIT_COLLECT_URL): there are no default credentials, `init` prints a one-time link for the first admin.
sqlalchemy, uvicorn and the web app are imported inside the verb functions (the `collect` extra).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from rlhfkit.errors import RlhfkitError

DEFAULT_DB = "collect.db"
DEFAULT_URL = "http://127.0.0.1:8000"
LINK_TTL_HOURS = 7 * 24


# ----------------------------------------------------------------------------------------------
# parsers
# ----------------------------------------------------------------------------------------------
def _common(p: argparse.ArgumentParser, links: bool = False) -> None:
    p.add_argument("--db", default=None, help=f"database: file path, sqlite:///PATH or postgresql://USER@HOST/DB "
                                              f"(default: $RLHFKIT_COLLECT_DB or {DEFAULT_DB})")
    if links:
        p.add_argument("--base-url", default=None, help=f"where the server is reached, for printed login links "
                                                        f"(default: $RLHFKIT_COLLECT_URL or {DEFAULT_URL})")
        p.add_argument("--link-ttl-hours", type=float, default=LINK_TTL_HOURS, help="login links expire after this")


def _sub(parent: argparse.ArgumentParser, dest: str, names: str):
    sub = parent.add_subparsers(dest=dest, metavar=names)
    sub.required = True
    return sub


def add_parsers(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("collect", help="human preference labelling: a web app on SQLite or PostgreSQL",
                       description="Collect human preference labels: create a database, projects and users, import "
                                   "pairs, serve the labelling web app, export a preference file for `rlhfkit dpo` / "
                                   "`rlhfkit rm train`, and measure agreement. See docs/collect.md.")
    cs = _sub(c, "collect_verb", "{init,serve,project,import,user,export,stats}")

    p = cs.add_parser("init", help="create the database and the first admin; prints a one-time login link")
    _common(p, links=True)
    p.add_argument("--admin", default="admin", help="name of the admin user to create")
    p.set_defaults(func=cmd_init)

    p = cs.add_parser("serve", help="run the web app (uvicorn), on 127.0.0.1 unless told otherwise")
    _common(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 exposes it to the network)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--secure-cookies", action="store_true", help="mark cookies Secure (behind an HTTPS proxy)")
    p.add_argument("--access-log", action="store_true",
                   help="log every request (off by default: a line per request costs CPU under load; "
                        "warnings and errors are always logged)")
    p.set_defaults(func=cmd_serve)

    _project_parsers(cs)
    _import_parser(cs)
    _user_parsers(cs)
    _export_parsers(cs)


def _project_parsers(cs) -> None:
    pr = cs.add_parser("project", help="create or list projects")
    ps = _sub(pr, "project_verb", "{create,list}")
    p = ps.add_parser("create", help="a new labelling project")
    p.add_argument("slug", help="short name used in URLs (lower-case letters, digits, - and _)")
    _common(p)
    p.add_argument("--name", default=None, help="display name (default: the slug)")
    p.add_argument("--overlap", type=int, default=3, help="annotators per item")
    p.add_argument("--lease-seconds", type=int, default=600, help="how long an annotator holds an item")
    p.add_argument("--gold-every", type=int, default=0, help="every N-th assignment is a gold item (0 = off)")
    p.add_argument("--onboarding-gold", type=int, default=0, help="the first N assignments are gold items")
    p.add_argument("--no-strength", dest="strength", action="store_false", help="do not ask slightly/much")
    p.add_argument("--reason", choices=["off", "optional", "required"], default="optional",
                   help="the free-text reason field")
    p.add_argument("--fixed-sides", dest="randomise_sides", action="store_false",
                   help="always show response A on the left (default: random per assignment)")
    p.add_argument("--guidelines", default=None, metavar="FILE", help="text shown to annotators (plain text)")
    p.add_argument("--per-user-cap", type=int, default=None, help="most items one annotator labels")
    p.add_argument("--retire-after-skips", type=int, default=None, help="retire an item skipped this many times")
    p.set_defaults(func=cmd_project_create)
    p = ps.add_parser("list", help="projects with item and judgment counts")
    _common(p)
    p.set_defaults(func=cmd_project_list)


def _import_parser(cs) -> None:
    p = cs.add_parser("import", help="add pairs to a project (candidates, preference files, `rlhfkit label` output)",
                      description="Import pairs: `rlhfkit generate` candidates, explicit or conversational preference "
                                  "files (the known label is kept hidden), or with --from-labels `rlhfkit label` "
                                  "output (the judge's verdict kept as a hidden suggestion). Valid records are "
                                  "imported, duplicates counted, every bad record listed as file:line: field: "
                                  "message (exit 1).")
    p.add_argument("slug")
    p.add_argument("file")
    _common(p)
    p.add_argument("--gold", action="store_true", help="gold items: candidates carry gold_answer A|B|tie; in a "
                                                       "preference file chosen is the answer")
    p.add_argument("--from-labels", action="store_true", help="the file is `rlhfkit label` output")
    p.add_argument("--route", choices=["uncertain"], default=None,
                   help="with --from-labels: import only the pairs the judge was unsure about")
    p.add_argument("--max-items", type=int, default=None, help="--route: at most this many pairs (least sure first)")
    p.add_argument("--min-confidence", type=float, default=None,
                   help="--route: an agreeing verdict below this confidence is unsure (default 0.7)")
    p.add_argument("--seed", type=int, default=None, help="seed of the A/B order of preference pairs")
    p.add_argument("--json", action="store_true", help="print the import report as JSON")
    p.set_defaults(func=cmd_import)


def _user_parsers(cs) -> None:
    us = _sub(cs.add_parser("user", help="add users, print login links, disable users"), "user_verb",
              "{add,link,disable,list}")
    p = us.add_parser("add", help="a new user; prints a one-time login link")
    p.add_argument("name")
    _common(p, links=True)
    p.add_argument("--admin", action="store_true", help="an admin (default: annotator)")
    p.add_argument("--project", action="append", default=[], metavar="SLUG", help="make a member (repeatable)")
    p.set_defaults(func=cmd_user_add)
    p = us.add_parser("link", help="a new one-time login link for a user")
    p.add_argument("name")
    _common(p, links=True)
    p.set_defaults(func=cmd_user_link)
    p = us.add_parser("disable", help="disable a user: sessions, API tokens and links revoked, leases released")
    p.add_argument("name")
    _common(p)
    p.set_defaults(func=cmd_user_disable)
    p = us.add_parser("list", help="users and their roles")
    _common(p)
    p.set_defaults(func=cmd_user_list)


def _export_parsers(cs) -> None:
    p = cs.add_parser("export", help="write the project's labels as a preference file (+ judgments, provenance)")
    p.add_argument("slug")
    _common(p)
    p.add_argument("--output", "-o", required=True, help="preference file to write (JSONL)")
    p.add_argument("--aggregate", choices=["majority", "unanimous", "per-judgment"], default="majority")
    p.add_argument("--min-votes", type=int, default=1, help="items with fewer votes are left out")
    p.add_argument("--min-agreement", type=float, default=0.0, help="least share of votes for the winner")
    p.add_argument("--min-gold-accuracy", type=float, default=None,
                   help="leave out annotators whose gold accuracy is below this")
    p.add_argument("--margin", choices=["votes", "strength", "none"], default="votes",
                   help="the margin field: from the vote split, from the strength answers, or none")
    p.add_argument("--format", choices=["explicit", "conversational"], default=None,
                   help="force the output form (default: conversational when prompts are message lists)")
    p.add_argument("--judge-outcomes", default=None, metavar="FILE",
                   help="`rlhfkit label` output: merge the judge's confident labels with the human ones")
    p.add_argument("--min-confidence", type=float, default=0.7, help="--judge-outcomes: confident from here")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_export)

    p = cs.add_parser("stats", help="agreement, per-annotator quality and judge-vs-human numbers")
    p.add_argument("slug")
    _common(p)
    p.add_argument("--json", action="store_true", help="print every number as JSON (stable keys)")
    p.set_defaults(func=cmd_stats)


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def db_url(args: argparse.Namespace) -> str:
    return args.db or os.environ.get("RLHFKIT_COLLECT_DB") or DEFAULT_DB


def shown_url(url: str) -> str:
    """The database for messages, without a password."""
    if "://" not in url or url.startswith("sqlite"):
        return url
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def open_store(args: argparse.Namespace, must_exist: bool = True):
    from rlhfkit.collect.store import Store

    url = db_url(args)
    if must_exist and "://" not in url and not Path(url).expanduser().is_file():
        raise RlhfkitError(f"no collection database at {url}: run `rlhfkit collect init --db {url}` first "
                           "(or pass --db / set $RLHFKIT_COLLECT_DB)")
    return Store.open(url)


def login_url(args: argparse.Namespace, token: str) -> str:
    base = (args.base_url or os.environ.get("RLHFKIT_COLLECT_URL") or DEFAULT_URL).rstrip("/")
    return f"{base}/login/{token}"


def _link_ttl(args: argparse.Namespace) -> int:
    if args.link_ttl_hours <= 0:
        raise RlhfkitError(f"--link-ttl-hours must be > 0, got {args.link_ttl_hours}")
    return int(args.link_ttl_hours * 3600)


def _project(store, slug: str):
    project = store.project(slug)
    if project is None:
        known = ", ".join(p.slug for p in store.projects()) or "none yet"
        raise RlhfkitError(f"no project {slug!r} (projects: {known}); create it with `rlhfkit collect project "
                           f"create {slug}`")
    return project


def _user(store, name: str):
    user = store.user(name)
    if user is None:
        raise RlhfkitError(f"no user {name!r}; add one with `rlhfkit collect user add {name}`")
    return user


# ----------------------------------------------------------------------------------------------
# init, serve
# ----------------------------------------------------------------------------------------------
def cmd_init(args: argparse.Namespace) -> int:
    from rlhfkit.collect import db

    ttl = _link_ttl(args)
    store = open_store(args, must_exist=False)
    try:
        if store.user(args.admin) is not None:
            raise RlhfkitError(f"{shown_url(db_url(args))} is already initialised (user {args.admin!r} exists); "
                               f"a new login link: `rlhfkit collect user link {args.admin}`")
        admin = store.add_user(args.admin, "admin")
        token = store.make_login_link(admin.id, ttl_s=ttl)
        store.audit(None, "init", {"admin": admin.name})
    finally:
        store.close()
    print(f"collection database ready: {shown_url(db_url(args))} (schema version {db.LATEST})")
    print(f"admin user {admin.name!r}; one-time login link (works once, for {args.link_ttl_hours:g} hours):")
    print(f"  {login_url(args, token)}")
    print(f"next: rlhfkit collect serve --db {shown_url(db_url(args))}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from rlhfkit.collect.server import create_app

    if not 0 < args.port < 65536:
        raise RlhfkitError(f"--port must be in 1..65535, got {args.port}")
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.secure_cookies:
        print(f"rlhfkit: warning: serving on {args.host} over plain HTTP; put it behind an HTTPS proxy and pass "
              "--secure-cookies", file=sys.stderr)
    store = open_store(args)
    try:
        # uvicorn logs warnings and errors only (its own start-up lines too, hence ours); --access-log: every request
        shown_host = f"[{args.host}]" if ":" in args.host else args.host
        print(f"rlhfkit collect: serving {shown_url(db_url(args))} on http://{shown_host}:{args.port} "
              "(Ctrl-C to stop)", file=sys.stderr, flush=True)
        uvicorn.run(create_app(store, secure_cookies=args.secure_cookies), host=args.host, port=args.port,
                    log_level="info" if args.access_log else "warning", access_log=args.access_log)
    finally:
        store.close()
    return 0


# ----------------------------------------------------------------------------------------------
# projects and users
# ----------------------------------------------------------------------------------------------
def cmd_project_create(args: argparse.Namespace) -> int:
    guidelines = ""
    if args.guidelines is not None:
        try:
            guidelines = Path(args.guidelines).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise RlhfkitError(f"cannot read the guidelines file {args.guidelines}: {e}") from None
    store = open_store(args)
    try:
        p = store.create_project(args.slug, args.name, overlap=args.overlap, lease_seconds=args.lease_seconds,
                                 gold_every=args.gold_every, onboarding_gold=args.onboarding_gold,
                                 strength=args.strength, reason=args.reason, randomise_sides=args.randomise_sides,
                                 guidelines=guidelines, per_user_cap=args.per_user_cap,
                                 retire_after_skips=args.retire_after_skips)
        store.audit(None, "project.create", {"slug": p.slug})
    finally:
        store.close()
    print(f"project {p.slug!r}: {p.overlap} annotators per item, {p.lease_seconds} s leases, gold every "
          f"{p.gold_every or 'never'} (onboarding {p.onboarding_gold}), reason {p.reason}, sides "
          f"{'random' if p.randomise_sides else 'fixed'}")
    print(f"next: rlhfkit collect import {p.slug} PAIRS.jsonl; rlhfkit collect user add NAME --project {p.slug}")
    return 0


def cmd_project_list(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        for p in store.projects():
            items = store.item_rows(p.id)
            judged = sum(1 for j in store.judgment_rows(p.id) if j["choice"] != "skip")
            full = sum(1 for i in items if i["status"] == "full")
            print(f"{p.slug:<20} {len(items):>6} items ({full} complete), {judged} judgments, overlap {p.overlap}")
    finally:
        store.close()
    return 0


def cmd_user_add(args: argparse.Namespace) -> int:
    ttl = _link_ttl(args)
    store = open_store(args)
    try:
        projects = [_project(store, slug) for slug in args.project]  # every slug checked before anything changes
        user = store.add_user(args.name, "admin" if args.admin else "annotator")
        for p in projects:
            store.add_member(p.id, user.id)
        token = store.make_login_link(user.id, ttl_s=ttl)
        store.audit(None, "user.add", {"name": user.name, "role": user.role, "projects": args.project})
    finally:
        store.close()
    where = f", member of {', '.join(args.project)}" if args.project else ""
    print(f"user {user.name!r} ({user.role}{where}); one-time login link (works once, "
          f"for {args.link_ttl_hours:g} hours):")
    print(f"  {login_url(args, token)}")
    return 0


def cmd_user_link(args: argparse.Namespace) -> int:
    ttl = _link_ttl(args)
    store = open_store(args)
    try:
        user = _user(store, args.name)
        if user.disabled:
            raise RlhfkitError(f"user {user.name!r} is disabled")
        token = store.make_login_link(user.id, ttl_s=ttl)
        store.audit(None, "user.link", {"name": user.name})
    finally:
        store.close()
    print(f"one-time login link for {user.name!r} (works once, for {args.link_ttl_hours:g} hours):")
    print(f"  {login_url(args, token)}")
    return 0


def cmd_user_disable(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        _user(store, args.name)
        store.disable_user(args.name)
        store.audit(None, "user.disable", {"name": args.name})
    finally:
        store.close()
    print(f"user {args.name!r} disabled: sessions, API tokens and login links revoked, active leases released")
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        for u in store.users():
            member = ", ".join(p.slug for p in store.projects(u.id)) or "-"
            print(f"{u.name:<24} {u.role:<10} {'disabled' if u.disabled else 'active':<9} projects: {member}")
    finally:
        store.close()
    return 0


# ----------------------------------------------------------------------------------------------
# import
# ----------------------------------------------------------------------------------------------
def _routed(args: argparse.Namespace):
    """--route uncertain: (NewItems, route report) from `rlhfkit label` outcomes (collect/route.py)."""
    from rlhfkit.collect import importer, route

    options = {"max_items": args.max_items}
    if args.min_confidence is not None:
        options["min_confidence"] = args.min_confidence
    if args.seed is not None:
        options["seed"] = args.seed
    to_humans, _confident, report = route.select_uncertain(args.file, **options)
    return importer.outcome_items(to_humans, Path(args.file).name), report


def cmd_import(args: argparse.Namespace) -> int:
    from rlhfkit.collect import importer

    if args.route is not None and not args.from_labels:
        raise RlhfkitError("--route uncertain goes with --from-labels (it routes an AI judge's unsure pairs)")
    if args.route is None and (args.max_items is not None or args.min_confidence is not None):
        raise RlhfkitError("--max-items and --min-confidence go with --route uncertain")
    route_report = None
    store = open_store(args)
    try:
        project = _project(store, args.slug)  # database and project first: a typo fails before reading the file
        if args.route == "uncertain":
            new_items, route_report = _routed(args)
            result = importer.ImportResult(args.file, "outcomes", items=new_items, records=route_report["pairs"])
        elif args.from_labels and importer.is_outcomes_file(args.file):  # every outcome row, unsure or not
            from rlhfkit.collect import route

            rows = route.read_outcomes(args.file)
            result = importer.ImportResult(args.file, "outcomes", records=len(rows),
                                           items=importer.outcome_items(rows, Path(args.file).name))
        else:
            result = importer.read_items(args.file, gold=args.gold, from_labels=args.from_labels, seed=args.seed)
        counts = store.add_items(project.id, result.items) if result.items else {"added": 0, "duplicates": 0}
        report = {"project": project.slug, "file": args.file, "kind": result.kind, "records": result.records,
                  "valid": len(result.items), "invalid": len(result.errors), **counts, "errors": result.errors,
                  "route": route_report}
        store.audit(None, "import", {k: v for k, v in report.items() if k != "errors"})
    finally:
        store.close()
    _print_import(report, args.json)
    return 1 if result.errors else 0


def _print_import(report: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, indent=1))
        return
    r = report
    print(f"read {r['records']} records from {r['file']} ({r['kind']}): {r['valid']} valid, {r['invalid']} invalid")
    print(f"added {r['added']} items to project {r['project']!r}; {r['duplicates']} duplicates not added (already "
          "in the project or repeated in the file)")
    route = r["route"]
    if route is not None:
        print(f"routing: {route['to_humans']} of {route['pairs']} pairs go to people ({route['uncertain']} unsure, "
              f"{route['left_out']} over --max-items); the judge's {route['labels_saved']} confident labels need "
              "no person")
    for line in r["errors"]:
        print(line, file=sys.stderr)
    if r["errors"]:
        print(f"rlhfkit: {len(r['errors'])} invalid records were not imported (listed above); fix them and import "
              "the file again (the valid ones are recognised as duplicates)", file=sys.stderr)


# ----------------------------------------------------------------------------------------------
# export, stats
# ----------------------------------------------------------------------------------------------
def cmd_export(args: argparse.Namespace) -> int:
    from rlhfkit.collect import export

    store = open_store(args)
    try:
        project = _project(store, args.slug)
        summary = export.export_project(
            store, project, args.output, fmt=args.format, judge_outcomes=args.judge_outcomes,
            min_confidence=args.min_confidence, policy=args.aggregate, min_votes=args.min_votes,
            min_agreement=args.min_agreement, exclude_annotators_below_gold=args.min_gold_accuracy,
            margin=None if args.margin == "none" else args.margin)
        store.audit(None, "export", {"project": project.slug, "output": summary["output"],
                                     "records": summary["records"], "policy": summary["policy"]})
    finally:
        store.close()
    if args.json:
        print(json.dumps(summary, indent=1, default=str))
        return 0
    counts = summary["counts"]
    dropped = ", ".join(f"{k} {v}" for k, v in counts["dropped"].items() if v) or "none"
    print(f"wrote {summary['records']} preference pairs ({summary['format']}) to {summary['output']}")
    print(f"items: {counts['items']}, kept {counts['kept']}; left out: {dropped}")
    print(f"judgments with pseudonymous annotators: {summary['judgments']}; provenance: {summary['provenance']}")
    merge = summary.get("merge")
    if merge:
        print(f"judge labels merged: {merge.get('judge_used')} (labels saved); judge-human agreement on "
              f"{merge.get('compared')} shared pairs: {merge.get('agreement')}")
    print(f"next: rlhfkit data check {summary['output']}")
    return 0


def _num(x, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def cmd_stats(args: argparse.Namespace) -> int:
    from rlhfkit.collect import quality

    store = open_store(args)
    try:
        project = _project(store, args.slug)
        stats = quality.project_stats(store.item_rows(project.id), store.judgment_rows(project.id))
    finally:
        store.close()
    if args.json:
        print(json.dumps(stats, indent=1, default=str))
        return 0
    items, judged, agree = stats["items"], stats["judgments"], stats["agreement"]
    print(f"project {project.slug!r}: {items['total']} items ({items['gold']} gold), status {items['by_status']}")
    print(f"judgments: {judged['total']} {judged['by_choice']}, late {judged['late']}")
    print(f"Krippendorff's alpha: {_num(agree.get('krippendorff_alpha'))} ({agree.get('reliability') or 'n/a'}); "
          f"Fleiss' kappa: {_num(agree.get('fleiss_kappa'))}")
    for a in stats["annotators"]:
        print(f"  {a.get('annotator')}: {a.get('judgments')} judgments, median {_num(a.get('median_seconds'), 1)} s, "
              f"left rate {_num(a.get('left_rate'))}, gold accuracy {_num(a.get('gold_accuracy'))}"
              + (f", flags {','.join(a['flags'])}" if a.get("flags") else ""))
    return 0
