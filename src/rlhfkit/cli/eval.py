"""`rlhfkit eval` (win rate of an aligned model over its starting point) and `rlhfkit demo` (the whole lifecycle)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from rlhfkit.errors import RlhfkitError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("eval", help="win rate of an aligned model over its starting point, KL, score, length",
                       description="Both models answer the same prompts (same seeded sampling); a reward model "
                                   "judges each pair. Writes eval.json and samples.jsonl.")
    e.add_argument("--policy", required=True, help="aligned model folder, or a run folder (its final/ model)")
    e.add_argument("--baseline", default=None,
                   help="model to compare with (default: the run's starting model from its config.yaml)")
    e.add_argument("--prompts", required=True, help="prompts file, or a preference file (its prompts)")
    e.add_argument("--reward-model", default=None,
                   help="reward model folder from `rlhfkit rm train`: scores every answer; the judge unless --judge")
    e.add_argument("--judge", default=None,
                   help="hf:MODEL | openai:MODEL | rm:PATH (see `rlhfkit label`): decides each pair, asked in both "
                        "orders; a win needs both orders to agree")
    e.add_argument("--output", "-o", default=None,
                   help="folder for eval.json and samples.jsonl (default: POLICY_RUN/eval for a run folder)")
    e.add_argument("--num-prompts", type=int, default=0, help="use the first N prompts (0 = all)")
    e.add_argument("--max-new-tokens", type=int, default=64)
    e.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (0 = greedy)")
    e.add_argument("--top-p", type=float, default=1.0)
    e.add_argument("--seed", type=int, default=42)
    e.add_argument("--batch-size", type=int, default=8)
    e.add_argument("--tie-margin", type=float, default=0.0,
                   help="score differences (0..1 scale) at or below this count as ties")
    e.add_argument("--max-prompt-length", type=int, default=256)
    e.add_argument("--json", action="store_true", help="print the report as one JSON object")
    e.add_argument("--no-progress", action="store_true")
    e.set_defaults(func=cmd_eval)

    d = sub.add_parser("demo", help="the whole lifecycle on the bundled data with the default model (offline)",
                       description="Check the bundled customer-support data, split it by prompt, train a reward "
                                   "model, align the default model with DPO and/or PPO, evaluate against the "
                                   "starting model, write an HTML report and summary.json.")
    d.add_argument("--method", choices=["dpo", "ppo", "both"], default="dpo")
    d.add_argument("--output", "-o", default="runs/demo", help="output folder (default runs/demo)")
    d.add_argument("--model", default=None, help="starting model (default: SmolLM2-135M-Instruct)")
    d.add_argument("--data", default="bundled:support", help="preference data (default bundled:support)")
    d.add_argument("--tiny", action="store_true",
                   help="a few steps of everything (for smoke tests with a tiny --model)")
    d.add_argument("--seed", type=int, default=42)
    d.set_defaults(func=cmd_demo)


def _check_positive(args: argparse.Namespace, *names: str) -> None:
    for n in names:
        if getattr(args, n) <= 0:
            raise RlhfkitError(f"--{n.replace('_', '-')} must be > 0, got {getattr(args, n)}")


def cmd_eval(args: argparse.Namespace) -> int:
    from rlhfkit.eval.winrate import evaluate, format_report, starting_model

    _check_positive(args, "max_new_tokens", "batch_size", "max_prompt_length")
    if args.num_prompts < 0 or args.temperature < 0 or not 0 < args.top_p <= 1:
        raise RlhfkitError("--num-prompts and --temperature must be >= 0 and --top-p in (0, 1]")
    if args.reward_model is None and args.judge is None:
        raise RlhfkitError("give --reward-model RM and/or --judge hf:MODEL|openai:MODEL|rm:PATH")
    for flag, path in (("--policy", args.policy), ("--reward-model", args.reward_model)):
        if path is not None and not Path(path).exists():
            raise RlhfkitError(f"{flag} {path}: no such folder")
    output = args.output
    if output is None:
        weights, start = starting_model(args.policy)
        if start is None:
            raise RlhfkitError(f"{args.policy} is not a run folder: give --output for eval.json and samples.jsonl")
        output = str(Path(weights).parent / "eval")
    report = evaluate(args.policy, args.prompts, reward_model=args.reward_model, judge=args.judge,
                      baseline=args.baseline,
                      output=output, num_prompts=args.num_prompts, max_new_tokens=args.max_new_tokens,
                      temperature=args.temperature, top_p=args.top_p, seed=args.seed, batch_size=args.batch_size,
                      tie_margin=args.tie_margin, max_prompt_length=args.max_prompt_length,
                      progress=not args.no_progress)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(format_report(report))
        print(f"samples: {Path(output) / 'samples.jsonl'}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from rlhfkit.demo import run_demo

    run_demo(method=args.method, output=args.output, model=args.model, data=args.data, tiny=args.tiny,
             seed=args.seed)
    return 0
