"""`rlhfkit model show`."""
from __future__ import annotations

import argparse


# ----------------------------------------------------------------------------------------------
# model
# ----------------------------------------------------------------------------------------------
def add_parsers(sub: argparse._SubParsersAction) -> None:
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
