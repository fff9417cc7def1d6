"""Training verbs of the CLI (`rlhfkit sft`, `rlhfkit dpo`): flags are generated from the config dataclasses,
so every config key is also a flag and a YAML key (`--config file.yaml`, flags override it)."""
from __future__ import annotations

import argparse
import json
import sys

from rlhfkit.config import DPOConfig, SFTConfig, add_config_args, build_config

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


def cmd_sft(args: argparse.Namespace) -> int:
    from rlhfkit.trainers.sft import train_sft

    cfg = build_config(SFTConfig, args)
    final = train_sft(cfg)
    print(f"final model: {final}")
    return 0


def cmd_dpo(args: argparse.Namespace) -> int:
    cfg = build_config(DPOConfig, args)
    if cfg.eval_only:
        from rlhfkit.trainers.dpo import eval_dpo

        metrics = eval_dpo(cfg)
        if args.json:
            print(json.dumps(metrics, indent=1))
        else:
            for k, v in metrics.items():
                print(f"{k:<28} {v:.4f}")
        return 0
    from rlhfkit.trainers.dpo import train_dpo

    final = train_dpo(cfg)
    print(f"final model: {final}", file=sys.stdout)
    return 0
