"""`rlhfkit report`: one self-contained HTML page (plots, evaluation table, samples) for runs and evaluations."""
from __future__ import annotations

import argparse


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="one self-contained HTML page: metric plots, evaluation table, samples",
                       description="Plots of the training metrics (runs sharing a metric on the same axes), each "
                                   "run's method, model, key config and final metrics, the evaluation table and "
                                   "baseline/policy samples side by side, in one HTML file with the images "
                                   "embedded (no JavaScript, nothing loaded from outside). The plots are also "
                                   "written as PNG files to FILE_files/ beside it.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                   help="a training run (metrics.jsonl, config.yaml), an evaluation folder (eval.json, "
                        "samples.jsonl from `rlhfkit eval`) or a folder of those (e.g. a demo's output)")
    p.add_argument("--output", "-o", metavar="FILE.html", default=None,
                   help="where to write the page (default: report.html in the first RUN_DIR)")
    p.add_argument("--samples", type=int, default=12, metavar="N",
                   help="samples shown per evaluation (default 12; all are in its samples.jsonl)")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from rlhfkit.eval.report import write_report

    path = write_report(args.run_dirs, args.output, max_samples=args.samples)
    print(f"wrote {path} (plots also in {path.with_name(path.stem + '_files')}/)")
    return 0
