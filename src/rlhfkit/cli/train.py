"""Training verbs of the CLI (`rlhfkit sft`, `rlhfkit dpo [eval]`, `rlhfkit ppo`, `rlhfkit rm train|eval|score`).

Flags are generated from the config dataclasses, so every config key is also a flag and a YAML key
(`--config file.yaml`, flags override it)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rlhfkit.config import DPOConfig, PPOConfig, RewardConfig, SFTConfig, add_config_args, build_config
from rlhfkit.errors import RlhfkitError

_SHORT = {"output": "-o"}


def add_parsers(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("sft", help="supervised fine-tuning (the step before RLHF)",
                       description="Supervised fine-tuning on prompt/response or message data; loss on "
                                   "completion tokens only.")
    add_config_args(s, SFTConfig, short=_SHORT)
    s.set_defaults(func=cmd_sft)

    d = sub.add_parser("dpo", help="direct preference optimisation (recommended first RLHF method)",
                       description="DPO and its variants (ipo, robust/cDPO, hinge) on preference pairs. "
                                   "Rerunning on the same --output resumes from its last checkpoint.")
    add_config_args(d, DPOConfig, short=_SHORT)
    d.add_argument("--json", action="store_true", help="with --eval-only: print the metrics as JSON")
    d.set_defaults(func=cmd_dpo)
    dsub = d.add_subparsers(dest="dpo_verb", metavar="{eval}")
    e = dsub.add_parser("eval", help="DPO metrics of a trained policy against its reference on held-out pairs",
                        description="The policy's implicit reward against its reference on --eval-data: "
                                    "eval/rewards/accuracies, margins, log-probs (what training logs as eval/...). "
                                    "--model runs/x/final finds its reference in runs/x/config.yaml. "
                                    "`rlhfkit dpo --eval-only` is the old spelling (kept for one release).")
    add_config_args(e, DPOConfig, short=_SHORT)
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    e.set_defaults(func=cmd_dpo_eval)
    _add_rm(sub)
    p = sub.add_parser("ppo", help="PPO against a reward model or a reward function (classic RLHF)",
                       description="PPO: the policy samples responses to --prompts, the reward model (or "
                                   "--reward-fn) scores them, and the policy is updated under a KL penalty to the "
                                   "reference. Rerunning on the same --output resumes.")
    add_config_args(p, PPOConfig, short={**_SHORT, "data": "--prompts"})
    p.set_defaults(func=cmd_ppo)


def cmd_sft(args: argparse.Namespace) -> int:
    from rlhfkit.trainers.sft import train_sft

    cfg = build_config(SFTConfig, args)
    final = train_sft(cfg)
    print(f"final model: {final}")
    return 0


def cmd_dpo_eval(args: argparse.Namespace) -> int:
    from rlhfkit.eval.preference import eval_dpo

    metrics = eval_dpo(build_config(DPOConfig, args, eval_only=True))
    if args.json:
        print(json.dumps(metrics, indent=1))
    else:
        for k, v in metrics.items():
            print(f"{k:<28} {v:.4f}")
    return 0


def cmd_dpo(args: argparse.Namespace) -> int:
    cfg = build_config(DPOConfig, args)
    if cfg.eval_only:            # the old spelling of `rlhfkit dpo eval`
        return cmd_dpo_eval(args)
    from rlhfkit.trainers.dpo import train_dpo

    final = train_dpo(cfg)
    print(f"final model: {final}", file=sys.stdout)
    return 0


def cmd_ppo(args: argparse.Namespace) -> int:
    from rlhfkit.trainers.ppo import train_ppo

    final = train_ppo(build_config(PPOConfig, args))
    print(f"final model: {final}")
    return 0


# ----------------------------------------------------------------------------------------------
# rm: train / eval / score
# ----------------------------------------------------------------------------------------------
def _add_rm(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rm", help="reward model: train on preference pairs, evaluate, score responses")
    rsub = p.add_subparsers(dest="rm_verb", metavar="{train,eval,score}")
    rsub.required = True

    t = rsub.add_parser("train", help="train a reward model (Bradley-Terry) on preference pairs",
                        description="Train a scalar reward model on preference pairs. Same flags and config "
                                    "style as `rlhfkit dpo`; rerunning on the same --output resumes.")
    add_config_args(t, RewardConfig, short=_SHORT)
    t.set_defaults(func=cmd_rm_train)

    e = rsub.add_parser("eval", help="accuracy, calibration and length bias of a reward model on pairs",
                        description="Accuracy, mean margin, calibration (ECE), accuracy by response length and "
                                    "the reward's correlation with length, next to the 'prefer the longer', "
                                    "'prefer the shorter' and chance baselines on the same pairs.")
    e.add_argument("--model", required=True, help="reward model folder (e.g. runs/rm/final)")
    e.add_argument("--data", required=True, help="preference file (any form `rlhfkit data check` reads)")
    e.add_argument("--data-format", default=None, choices=["explicit", "conversational", "implicit"])
    e.add_argument("--batch-size", type=int, default=8)
    e.add_argument("--json", action="store_true", help="print the report as JSON (stable keys)")
    e.add_argument("--no-progress", dest="progress", action="store_false")
    e.set_defaults(func=cmd_rm_eval)

    s = rsub.add_parser("score", help="score (prompt, response) pairs in 0..1 with a reward model",
                        description="Score = sigmoid((r - mean) / std) with the training rewards' statistics "
                                    "stored with the model: 0.5 is a typical training response.")
    s.add_argument("--model", required=True, help="reward model folder")
    s.add_argument("--prompt", help="one prompt (with --response)")
    s.add_argument("--response", help="one response (with --prompt)")
    s.add_argument("--input", help="JSONL with `prompt` and `response` on every line")
    s.add_argument("--output", "-o", help="with --input: write the lines back here with `score` and `reward` "
                                         "fields (default: stdout)")
    s.add_argument("--batch-size", type=int, default=8)
    s.set_defaults(func=cmd_rm_score)


def cmd_rm_train(args: argparse.Namespace) -> int:
    from rlhfkit.trainers.reward import train_rm

    final = train_rm(build_config(RewardConfig, args))
    print(f"final model: {final}")
    return 0


def cmd_rm_eval(args: argparse.Namespace) -> int:
    from rlhfkit.eval.preference import eval_rm
    from rlhfkit.eval.reward import format_report

    if args.batch_size < 1:
        raise RlhfkitError("--batch-size must be >= 1")
    report = eval_rm(args.model, args.data, data_format=args.data_format, batch_size=args.batch_size,
                     progress=args.progress)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(format_report(report, title=f"reward model {args.model} on {args.data}"))
    return 0


def read_score_requests(path: str) -> list[dict]:
    """JSONL lines with `prompt` and `response` (text or chat messages); errors name the line and the field."""
    from rlhfkit.data.formats import json_type

    p = Path(path)
    if not p.is_file():
        raise RlhfkitError(f"{path}: no such file")
    from rlhfkit.data.io import read_json_objects

    rows = []
    for n, rec in read_json_objects(p):
        for field in ("prompt", "response"):
            if not isinstance(rec.get(field), (str, list)):
                got = "missing" if field not in rec else json_type(rec[field])
                raise RlhfkitError(f"{path}:{n}: field '{field}' must be text or a list of chat messages, "
                                   f"got {got}")
        rows.append(rec)
    if not rows:
        raise RlhfkitError(f"{path}: no lines to score")
    return rows


def cmd_rm_score(args: argparse.Namespace) -> int:
    one = args.prompt is not None or args.response is not None
    if one == (args.input is not None) or (one and (args.prompt is None or args.response is None)):
        raise RlhfkitError("give either --prompt and --response, or --input FILE.jsonl")
    if args.output and not args.input:
        raise RlhfkitError("--output goes with --input")
    rows = read_score_requests(args.input) if args.input else [{"prompt": args.prompt, "response": args.response}]
    from rlhfkit.console import progress_bar
    from rlhfkit.files import atomic_write_text
    from rlhfkit.models.scorer import RewardScorer

    scorer = RewardScorer(args.model, batch_size=max(args.batch_size, 1), quiet=False)
    if not scorer.trained:
        print(f"[rlhfkit] {args.model} has no stored reward statistics (not trained by `rlhfkit rm train`): "
              "scores are sigmoid(raw reward)", file=sys.stderr)
    bar = progress_bar(len(rows), 0, "scoring", len(rows) > 1)
    raw = scorer.rewards([r["prompt"] for r in rows], [r["response"] for r in rows], progress=bar)
    bar.close()
    scores = scorer.normalize(raw)
    if not args.input:
        print(f"{float(scores[0]):.4f}")
        return 0
    text = "".join(json.dumps({**r, "score": round(float(s), 6), "reward": round(float(x), 6)}) + "\n"
                   for r, s, x in zip(rows, scores, raw))
    if args.output:
        atomic_write_text(Path(args.output), text)
        print(f"wrote {len(rows)} scored lines to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
