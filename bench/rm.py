"""Reward-model throughput and memory on the `rm` peer workload of ../shared/bench/README.md.

usage:
  python bench/rm.py [--steps 12] [--trl] [--trl-python PY] [--repeat N]

Prints one JSON line per run, {"peer": "rlhfkit", "mode": "rm", "pairs_per_sec": ..., "peak_rss_mb": ...}, each
workload in its own process. With --trl, TRL's harness (`trl_bench.py rm`, RewardTrainer from trl 1.16) runs the
same workload right after ours and a ratio table is printed at the end (stderr).

The workload (as the peer's): SmolLM2-135M-Instruct as a sequence classifier with a new scalar head (seed 42),
Bradley-Terry loss -log sigmoid(r_c - r_r), the first 256 usable HH-RLHF harmless pairs (plain text, no chat
template), prompt left-truncated to 256 tokens, prompt + response + EOS kept-start to 384, 8 pairs per step in file
order, AdamW lr 1e-5 constant, clip 1.0, bf16 autocast over fp32 weights, full fine-tune, 12 steps, the first 2
excluded from timing. The reward statistics pass after training is not timed (TRL's harness saves after timing).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from common import BATCH, STEPS, TRL_PYTHON, ratio_table, run_child, run_trl, summary, workload_file


def run_ours(steps: int) -> dict:
    from rlhfkit.config import RewardConfig, build_config
    from rlhfkit.trainers.reward import train_rm

    tmp = Path(tempfile.mkdtemp(prefix="rlhfkit-bench-rm-"))
    data = workload_file(tmp / "pairs.jsonl")
    cfg = build_config(
        RewardConfig, data=str(data), output=str(tmp / "out"), batch_size=BATCH, max_steps=steps,
        learning_rate=1e-5, lr_scheduler="constant", warmup_steps=0, max_length=384, max_prompt_length=256,
        precision="bf16", shuffle=False, group_by_length=False, use_chat_template=False, save_steps=0, seed=42,
        progress=False)
    t0 = time.perf_counter()
    train_rm(cfg)
    return summary("rm", tmp / "out", time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--trl", action="store_true", help="also run TRL's harness, alternating with ours")
    ap.add_argument("--trl-python", default=TRL_PYTHON)
    ap.add_argument("--repeat", type=int, default=1, help="rounds (ours, TRL)")
    ap.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child:
        print(json.dumps(run_ours(args.steps)), flush=True)
        return
    results = []
    for _ in range(args.repeat):
        ours = run_child(__file__, ["--_child", "--steps", str(args.steps)])
        print(json.dumps(ours), flush=True)
        results.append(ours)
        if args.trl:
            trl = run_trl("rm", args.steps, args.trl_python)
            print(json.dumps(trl), flush=True)
            results.append(trl)
    if args.trl:
        ratio_table(results, ["rm"])


if __name__ == "__main__":
    main()
