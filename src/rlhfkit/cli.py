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
# data
# ----------------------------------------------------------------------------------------------
def _add_data(sub: argparse._SubParsersAction) -> None:
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


# ----------------------------------------------------------------------------------------------
# model
# ----------------------------------------------------------------------------------------------
def _add_model(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model", help="inspect models")
    msub = p.add_subparsers(dest="model_verb", metavar="{show}")
    msub.required = True
    s = msub.add_parser("show", help="where a model resolves to, its size, chat template, pad and EOS")
    s.add_argument("name", nargs="?", default=None, help="hub id or local path (default: the default model)")
    s.set_defaults(func=cmd_model_show)


def cmd_model_show(args: argparse.Namespace) -> int:
    import time

    t_start = time.perf_counter()
    from transformers import AutoConfig, AutoModelForCausalLM

    from rlhfkit.models.load import load_model, load_tokenizer, resolve_model

    resolved = resolve_model(args.name)
    tok = load_tokenizer(resolved.path)
    # import the architecture's code before the clock starts: "load time" is the weights' own, not Python's imports
    AutoModelForCausalLM._model_mapping[type(AutoConfig.from_pretrained(resolved.path))]
    t0 = time.perf_counter()
    model = load_model(resolved.path)
    dt = time.perf_counter() - t0
    n = sum(p.numel() for p in model.parameters())
    print(f"model:          {resolved.name}")
    print(f"source:         {resolved.source}")
    print(f"path:           {resolved.path}")
    print(f"architecture:   {type(model).__name__}")
    print(f"parameters:     {n:,} ({n / 1e6:.1f}M)")
    print(f"chat template:  {'yes' if tok.chat_template else 'no'}")
    print(f"eos token:      {tok.eos_token!r} (id {tok.eos_token_id})")
    print(f"pad token:      {tok.pad_token!r} (id {tok.pad_token_id})"
          + ("  [same as EOS: masks come from attention, never from the pad id]"
             if tok.pad_token_id is not None and tok.pad_token_id == tok.eos_token_id else ""))
    print(f"load time:      {dt:.2f} s (weights; imports, resolution and tokenizer before it: "
          f"{t0 - t_start:.2f} s)")
    return 0


# ----------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from rlhfkit import __version__

    parser = argparse.ArgumentParser(prog="rlhfkit", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"rlhfkit {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    _add_data(sub)
    _add_model(sub)
    # each group of verbs lives in its own module with an add_parsers(sub) function
    import importlib

    for name in _VERB_MODULES:
        importlib.import_module(name).add_parsers(sub)
    return parser


# sft, dpo, rm, ppo | eval, demo | report | generate, label
_VERB_MODULES = ("rlhfkit.cli_train", "rlhfkit.cli_eval", "rlhfkit.cli_report", "rlhfkit.cli_rlaif")


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


if __name__ == "__main__":
    sys.exit(main())
