"""DPO throughput and memory on the peer workload of ../shared/bench/README.md, printed like trl_bench.py.

usage:
  python bench/dpo.py [dpo-full] [dpo-lora] [--steps 12] [--trl] [--trl-python PY] [--repeat N]

Each workload runs in its own process (peak RSS is per process) and prints ONE JSON line:
  {"peer": "rlhfkit", "mode": ..., "pairs_per_sec": ..., "peak_rss_mb": ..., "sec_per_step_median": ..., ...}
With --trl, TRL's own harness (../shared/bench/trl_bench.py, run with --trl-python, a venv holding trl 1.16) runs
the same workload right after ours, alternating, and a table of ratios is printed at the end (stderr).

The workload (identical to the peer's): SmolLM2-135M-Instruct, the first 256 usable pairs of the HH-RLHF harmless
file (implicit prompt split at the last "Assistant:"; plain text, no chat template), prompt left-truncated to 256
tokens, prompt + response + EOS truncated keep-start to 384, 8 pairs per step in file order, AdamW lr 5e-7
constant, no warm-up, clip 1.0, sigmoid loss beta 0.1, bf16 autocast over fp32 weights, 12 steps, the first 2
excluded from timing. dpo-full: frozen reference copy (held in bf16); dpo-lora: r=16 alpha=32 on all
projections, reference = adapter disabled.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from common import BATCH, STEPS, TRL_PYTHON, ratio_table, run_child, run_trl, summary, workload_file


def run_ours(mode: str, steps: int, prefix_sharing: bool, release_memory: bool) -> dict:
    from rlhfkit.config import DPOConfig, build_config
    from rlhfkit.trainers.dpo import train_dpo

    tmp = Path(tempfile.mkdtemp(prefix="rlhfkit-bench-"))
    data = workload_file(tmp / "pairs.jsonl")
    cfg = build_config(
        DPOConfig, data=str(data), output=str(tmp / "out"), lora=(mode == "dpo-lora"), lora_r=16, lora_alpha=32,
        batch_size=BATCH, max_steps=steps, learning_rate=5e-7, lr_scheduler="constant", warmup_steps=0,
        max_length=384, max_prompt_length=256, beta=0.1, loss_type="sigmoid", precision="bf16",
        shuffle=False, group_by_length=False, use_chat_template=False, save_steps=0, seed=42,
        prefix_sharing=prefix_sharing, release_memory=release_memory, progress=False)
    t0 = time.perf_counter()
    train_dpo(cfg)
    total = time.perf_counter() - t0
    return {**summary(mode, tmp / "out", total), "prefix_sharing": prefix_sharing,
            "release_memory": release_memory}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("modes", nargs="*", help="dpo-full and/or dpo-lora (default: both)")
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--no-prefix-sharing", action="store_true")
    ap.add_argument("--no-release-memory", dest="release_memory", action="store_false",
                    help="skip the per-step malloc_trim")
    ap.add_argument("--trl", action="store_true", help="also run TRL's harness, alternating with ours")
    ap.add_argument("--trl-python", default=TRL_PYTHON)
    ap.add_argument("--repeat", type=int, default=1, help="rounds (ours, TRL) per mode")
    ap.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    args.modes = args.modes or ["dpo-full", "dpo-lora"]
    if set(args.modes) - {"dpo-full", "dpo-lora"}:
        ap.error(f"unknown workload(s) {sorted(set(args.modes) - {'dpo-full', 'dpo-lora'})}")
    if args._child:  # one workload in this process
        print(json.dumps(run_ours(args._child, args.steps, not args.no_prefix_sharing, args.release_memory)),
              flush=True)
        return

    results = []
    for mode in args.modes:
        for _ in range(args.repeat):
            flags = ["--_child", mode, "--steps", str(args.steps)]
            flags += ["--no-prefix-sharing"] if args.no_prefix_sharing else []
            flags += [] if args.release_memory else ["--no-release-memory"]
            ours = run_child(__file__, flags)
            print(json.dumps(ours), flush=True)
            results.append(ours)
            if args.trl:
                trl = run_trl(mode, args.steps, args.trl_python)
                print(json.dumps(trl), flush=True)
                results.append(trl)
    if args.trl:
        ratio_table(results, args.modes)


if __name__ == "__main__":
    main()
