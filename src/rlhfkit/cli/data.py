"""`rlhfkit data check | convert | split | list`."""
from __future__ import annotations

import argparse

from rlhfkit.errors import RlhfkitError


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------
def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="check, convert, split and list preference data")
    dsub = p.add_subparsers(dest="data_verb", metavar="{check,convert,split,list}")
    dsub.required = True

    c = dsub.add_parser("check", help="quality report for a preference file (exit 1 when it has errors)")
    c.add_argument("file", help="JSONL, JSON, Parquet, a `datasets` folder, or bundled:NAME")
    c.add_argument("--format", choices=["explicit", "conversational", "implicit"], default=None,
                   help="override the detected form")
    c.add_argument("--model", default=None, help="tokenizer to count truncated pairs with (needs --max-length)")
    c.add_argument("--max-length", type=int, default=None, help="max prompt+completion tokens")
    c.add_argument("--max-prompt-length", type=int, default=None, help="max prompt tokens")
    c.add_argument("--json", action="store_true", help="print the report as one JSON object")
    c.set_defaults(func=cmd_data_check)

    v = dsub.add_parser("convert", help="rewrite a preference file as explicit or conversational JSONL")
    v.add_argument("file")
    v.add_argument("--to", choices=["explicit", "conversational"], default="explicit")
    v.add_argument("--format", choices=["explicit", "conversational", "implicit"], default=None)
    v.add_argument("--output", "-o", required=True)
    v.set_defaults(func=cmd_data_convert)

    s = dsub.add_parser("split", help="split by prompt hash into train and test JSONL (no prompt in both)")
    s.add_argument("file")
    s.add_argument("--test-fraction", type=float, default=0.1)
    s.add_argument("--seed", type=int, default=0, help="salt of the prompt hash")
    s.add_argument("--format", choices=["explicit", "conversational", "implicit"], default=None)
    s.add_argument("--output-dir", "-o", required=True, help="writes train.jsonl and test.jsonl here")
    s.set_defaults(func=cmd_data_split)

    ls = dsub.add_parser("list", help="bundled datasets with path, size and licence")
    ls.set_defaults(func=cmd_data_list)


def cmd_data_check(args: argparse.Namespace) -> int:
    from rlhfkit.data.validate import check_file

    if (args.model is None) != (args.max_length is None):
        raise RlhfkitError("--model and --max-length go together: give both to count truncated pairs")
    tokenizer = None
    if args.model is not None:
        from rlhfkit.models.load import load_tokenizer

        tokenizer = load_tokenizer(args.model)
    report = check_file(args.file, fmt=args.format, tokenizer=tokenizer, max_length=args.max_length,
                        max_prompt_length=args.max_prompt_length)
    if args.json:
        import json

        print(json.dumps(report.to_dict(), indent=1))
    else:
        print(report.format_text())
    return 1 if report.errors else 0


def cmd_data_convert(args: argparse.Namespace) -> int:
    from rlhfkit.data.io import convert_file

    n = convert_file(args.file, args.output, to=args.to, fmt=args.format)
    print(f"wrote {n} pairs to {args.output} ({args.to})")
    return 0


def cmd_data_split(args: argparse.Namespace) -> int:
    from rlhfkit.data.io import split_file

    n_train, n_test = split_file(args.file, args.output_dir, test_fraction=args.test_fraction,
                                 seed=args.seed, fmt=args.format)
    print(f"train: {n_train} pairs, test: {n_test} pairs in {args.output_dir}")
    return 0


def cmd_data_list(args: argparse.Namespace) -> int:
    from rlhfkit.data.io import list_bundled

    for d in list_bundled():
        print(f"bundled:{d['name']:<12} {d['pairs']:>6} pairs  {d['bytes'] / 1024:8.1f} KiB  "
              f"licence {d['licence']}  {d['path']}")
    return 0
