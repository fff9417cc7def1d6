"""Human preference collection: `rlhfkit collect`, a small web app that turns people's clicks into judgments
exactly once and exports them as preference files that `rlhfkit dpo` and `rlhfkit rm train` read as they are.

Layers, bottom to top (each imports only the ones below it, and `rlhfkit.data` for file formats):

    db.py        the SQL schema (SQLAlchemy Core), numbered migrations, engines for SQLite (WAL) and PostgreSQL
    store.py     `Store`: users, tokens, projects, items, and the assignment core (leases, atomic slot claims,
                 idempotent submits, late submits flagged), one write transaction per operation
    importer.py  reads `rlhfkit generate` candidates, preference files and `rlhfkit label` output into NewItems
    quality.py   agreement statistics (Krippendorff's alpha, Fleiss' and Cohen's kappa), per-annotator quality
    export.py    aggregation policies and the preference-file writer with a provenance sidecar
    route.py     RLAIF-to-human routing: the pairs an AI judge was unsure about go to people
    server.py    the starlette app (server-rendered HTML, CSRF, CSP), templates/ and static/

The command line is `rlhfkit.cli.collect`. Heavy dependencies (sqlalchemy, starlette, uvicorn) sit behind the
`collect` extra and are imported only by these modules, never by `import rlhfkit`; nothing here imports torch.
"""
