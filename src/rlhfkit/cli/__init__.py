"""`rlhfkit <verb>`: parse arguments, call one function per verb, map errors to exit codes.

Exit codes: 0 success; 1 the command ran and found problems (e.g. `data check` found errors);
2 usage or input errors (bad flag, missing file, unknown model); 130 interrupted.
Imports of heavy modules (torch, transformers) happen inside the verb functions so `rlhfkit --help` is fast.
"""
from __future__ import annotations

import argparse
import sys

from rlhfkit.errors import RlhfkitError


# ----------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from rlhfkit import __version__

    parser = argparse.ArgumentParser(prog="rlhfkit", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"rlhfkit {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    # each group of verbs lives in its own module with an add_parsers(sub) function
    import importlib

    for name in _VERB_MODULES:
        importlib.import_module(name).add_parsers(sub)
    return parser


# data | model | sft, dpo, rm, ppo | eval, demo | report | generate, label | collect
_VERB_MODULES = ("rlhfkit.cli.data", "rlhfkit.cli.model", "rlhfkit.cli.train", "rlhfkit.cli.eval",
                 "rlhfkit.cli.report", "rlhfkit.cli.rlaif", "rlhfkit.cli.collect")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse exits 2 on usage errors
    try:
        return int(args.func(args) or 0)
    except RlhfkitError as e:
        kind = "" if e.exit_code == 130 else "error: "  # a requested stop (Ctrl-C) is not an error
        print(f"rlhfkit: {kind}{e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("rlhfkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0

